"""Export of a trained model's forward with ``torch.export`` and to ONNX,
checked against PyTorch (the back end of ``tools/deployment/export.py``).

Two parts of a model can be exported:

- ``classifier``: an mmpretrain ``ImageClassifier`` from image tensors to
  class logits (``model(inputs, mode='tensor')``);
- ``backbone``: the feature extractor the task heads read,
  ``model.extract_feat(inputs)``: HiViT and the iTPN pyramid in detection and
  segmentation configs (one output per pyramid level), HiViT and the pooling
  neck in classification configs.

The exported graph takes what the model's data preprocessor hands the
network: a float32 ``(N, 3, H, W)`` batch, normalised by the preprocessor's
mean and std. The batch size is dynamic; the image size is fixed, because
the position embeddings and the relative position bias are built for one
patch grid. Mean, std and class names travel with the file (ONNX metadata,
an extra file in the ``.pt2`` archive).

The model is built from the config and never passed to
:func:`mmitpn.accel.accelerate` (which the training and test tools call), so
the plain PyTorch modules are exported, whatever ``MMITPN_ACCEL`` says, not
the CPU-specific oneDNN and bfloat16 fast paths.
"""
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import MODELS, init_default_scope
from torch.nn.attention import SDPBackend, sdpa_kernel

from mmitpn.compat import apply_compat_patches
from mmitpn.models.utils.checkpoint_loading import load_checkpoint_checked

PARTS = ('classifier', 'backbone')
FORMATS = ('torch-export', 'onnx')
INPUT_NAME = 'inputs'
# The name of the metadata file inside a torch.export archive.
METADATA_FILE = 'mmitpn_export.json'


class ExportInputError(ValueError):
    """A config, part or shape that cannot be exported; the message says
    why and what to pass instead."""


class ExportedPart(torch.nn.Module):
    """One tensor-to-tensors forward of a built model (see module doc)."""

    def __init__(self, model: torch.nn.Module, part: str):
        super().__init__()
        if part not in PARTS:
            raise ValueError(f'part must be one of {PARTS}, got {part!r}')
        self.model = model
        self.part = part

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if self.part == 'classifier':
            return (self.model(inputs, mode='tensor'), )
        return tuple(self.model.extract_feat(inputs))

    def output_names(self, num_outputs: int) -> List[str]:
        if self.part == 'classifier':
            return ['logits']
        return [f'feat{i}' for i in range(num_outputs)]


def check_part(model: torch.nn.Module, part: str) -> None:
    """Refuse a part the model has not, naming the one it has."""
    name = type(model).__name__
    if part == 'classifier':
        from mmpretrain.models import ImageClassifier
        if not isinstance(model, ImageClassifier) or not model.with_head:
            raise ExportInputError(
                '--part classifier needs an image classifier with a head '
                '(mmpretrain ImageClassifier, a configs/cls config); this '
                f"config's model is {name}. Export its feature extractor "
                'with --part backbone.')
    elif not hasattr(model, 'extract_feat'):
        raise ExportInputError(
            '--part backbone needs a model with extract_feat (an '
            f'mmpretrain, mmdet or mmseg model); {name} has none')


def build_model(cfg: Config, checkpoint: str) -> Tuple[torch.nn.Module, dict]:
    """The config's model with the checkpoint's weights, in eval mode, and
    the checkpoint's ``meta``.

    The checkpoint must fill the model exactly, as for ``tools/test.py``: an
    export of half-loaded weights would ship a model that was never
    trained.
    """
    apply_compat_patches()
    if 'default_scope' not in cfg:
        raise ExportInputError(
            'the config has no default_scope (mmpretrain, mmdet '
            'or mmseg): use a config of configs/{cls,det,seg}')
    init_default_scope(cfg.default_scope)
    # As mmengine's Runner does: a top-level data_preprocessor is the
    # model's unless the model has its own.
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(cfg.model)
    content = load_checkpoint_checked(model, checkpoint, 'test')
    return model.eval(), content.get('meta') or {}


def default_shape(model: torch.nn.Module) -> Tuple[int, int]:
    """``(H, W)`` the backbone was built for."""
    size = getattr(model.backbone, 'img_size', None)
    if size is None:
        raise ExportInputError(
            f'{type(model.backbone).__name__} has no img_size; '
            'pass --shape H W')
    return tuple(size) if isinstance(size, Sequence) else (size, size)


def export_metadata(model: torch.nn.Module,
                    part: str,
                    shape: Tuple[int, int],
                    output_names: Sequence[str],
                    classes: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """What a user of the exported file needs to feed it (all strings)."""
    preprocessor = model.data_preprocessor
    meta = dict(
        part=part,
        input=f'{INPUT_NAME}: float32 (N, 3, {shape[0]}, {shape[1]}), '
        '(image - mean) / std',
        outputs=', '.join(output_names))
    for key in ('mean', 'std'):
        value = getattr(preprocessor, key, None)
        if isinstance(value, torch.Tensor):
            meta[key] = json.dumps(
                [round(v, 4) for v in value.flatten().tolist()])
    if classes:
        meta['classes'] = json.dumps(list(classes))
    return {k: str(v) for k, v in meta.items()}


def export_part(module: ExportedPart,
                shape: Tuple[int, int],
                fmt: str,
                out_file: str,
                output_names: Sequence[str],
                metadata: Dict[str, str],
                opset: Optional[int] = None) -> None:
    """Export ``module`` for ``(N, 3, H, W)`` inputs with a dynamic N."""
    if fmt not in FORMATS:
        raise ValueError(f'format must be one of {FORMATS}, got {fmt!r}')
    example = torch.randn(2, 3, *shape)
    # The math attention kernel: with the CPU flash kernel the traced graph
    # takes a view of the attention output that is only valid for that
    # kernel's memory layout, and fails once the ONNX exporter decomposes
    # attention into plain products.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        dynamic_batch = {0: torch.export.Dim('batch', min=1)}
        program = torch.export.export(
            module, (example, ), dynamic_shapes=(dynamic_batch, ))
        if fmt == 'torch-export':
            torch.export.save(
                program,
                out_file,
                extra_files={METADATA_FILE: json.dumps(metadata)})
            return
        onnx_program = torch.onnx.export(
            program, (example, ),
            input_names=[INPUT_NAME],
            output_names=list(output_names),
            opset_version=opset,
            dynamo=True,
            verbose=False)
    onnx_program.model.metadata_props.update(metadata)
    # One file unless the weights pass ONNX's 2 GB limit.
    onnx_program.save(out_file)


def run_exported(fmt: str, out_file: str,
                 inputs: torch.Tensor) -> List[np.ndarray]:
    """Outputs of the exported file: its ``torch.export`` program, or ONNX
    Runtime on the CPU."""
    if fmt == 'torch-export':
        program = torch.export.load(out_file)
        with torch.no_grad():
            return [o.numpy() for o in program.module()(inputs)]
    import onnxruntime
    session = onnxruntime.InferenceSession(
        out_file, providers=['CPUExecutionProvider'])
    return session.run(None, {INPUT_NAME: inputs.numpy()})


def compare_with_pytorch(module: ExportedPart,
                         fmt: str,
                         out_file: str,
                         shape: Tuple[int, int],
                         batch_sizes: Sequence[int] = (1, 3),
                         seed: int = 0) -> Dict[str, Tuple[float, float]]:
    """Run the exported file and the PyTorch module on the same random
    normalised batches (batch sizes other than the traced one, so the
    dynamic batch is checked too).

    Returns:
        dict: ``{output name: (max abs difference, max abs PyTorch
        value)}`` over all batches.
    """
    generator = torch.Generator().manual_seed(seed)
    result: Dict[str, Tuple[float, float]] = {}
    for batch_size in batch_sizes:
        inputs = torch.randn(batch_size, 3, *shape, generator=generator)
        with torch.no_grad():
            reference = [o.numpy() for o in module(inputs)]
        exported = run_exported(fmt, out_file, inputs)
        if len(exported) != len(reference):
            raise RuntimeError(f'{out_file} has {len(exported)} outputs, the '
                               f'PyTorch model {len(reference)}')
        names = module.output_names(len(reference))
        for name, ref, out in zip(names, reference, exported):
            if out.shape != ref.shape:
                raise RuntimeError(
                    f'{out_file}: output {name} has shape {out.shape} for a '
                    f'batch of {batch_size}, PyTorch {ref.shape}')
            diff, scale = result.get(name, (0., 0.))
            result[name] = (max(diff, float(np.abs(out - ref).max())),
                            max(scale, float(np.abs(ref).max())))
    return result


def export_and_check(cfg: Config,
                     checkpoint: str,
                     part: str,
                     fmt: str,
                     out_file: str,
                     shape: Optional[Tuple[int, int]] = None,
                     opset: Optional[int] = None
                     ) -> Dict[str, Tuple[float, float]]:
    """Build, load, export, then compare (see :func:`compare_with_pytorch`).
    """
    model, meta = build_model(cfg, checkpoint)
    check_part(model, part)
    shape = tuple(shape) if shape else default_shape(model)
    module = ExportedPart(model, part).eval()
    with torch.no_grad():
        output_names = module.output_names(
            len(module(torch.zeros(1, 3, *shape))))
    classes = (meta.get('dataset_meta') or {}).get('classes')
    metadata = export_metadata(model, part, shape, output_names, classes)
    export_part(module, shape, fmt, out_file, output_names, metadata, opset)
    print_log(
        f'exported {part} of {type(model).__name__} for (N, 3, '
        f'{shape[0]}, {shape[1]}) inputs to {out_file} ({fmt})',
        logger='current')
    return compare_with_pytorch(module, fmt, out_file, shape)
