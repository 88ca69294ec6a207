from .blocks import (Attention, AttentionBlock, CMLPBlock, DropPath,
                     LayerScale, Mlp, PatchMerge, PatchSplit,
                     PyramidLevelEmbed, init_linear_and_norm)
from .checkpoint_files import CheckpointError, CheckpointFile, read_checkpoint
from .checkpoint_loading import (LoadReport, PretrainedCheckedModule,
                                 check_model_checkpoint,
                                 load_checkpoint_checked, load_pretrained)
from .layout import nchw_to_tokens, tokens_to_nchw
from .masking import block_masking, gather_patches, random_masking
from .pos_embed import (build_2d_sincos_pos_embed, relative_position_index,
                        resize_pos_embed, resize_rel_pos_table)

__all__ = [
    'CheckpointError', 'CheckpointFile', 'read_checkpoint', 'LoadReport',
    'PretrainedCheckedModule', 'check_model_checkpoint',
    'load_checkpoint_checked', 'load_pretrained', 'Attention', 'AttentionBlock', 'CMLPBlock', 'DropPath',
    'LayerScale', 'Mlp', 'PatchMerge', 'PatchSplit', 'PyramidLevelEmbed',
    'init_linear_and_norm', 'nchw_to_tokens', 'tokens_to_nchw',
    'block_masking', 'gather_patches', 'random_masking',
    'build_2d_sincos_pos_embed', 'relative_position_index',
    'resize_pos_embed', 'resize_rel_pos_table'
]
