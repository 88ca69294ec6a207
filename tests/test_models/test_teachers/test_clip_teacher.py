"""The frozen CLIP teacher on its own: local weights only, targets, frozen,
never saved nor replaced by a checkpoint."""
import pytest
import torch

from tiny_models import TINY_CLIP

from mmitpn.models.teachers import CLIPTeacher

@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    import open_clip
    torch.manual_seed(0)
    model = open_clip.create_model('ViT-B-16', **TINY_CLIP)
    path = str(tmp_path_factory.mktemp('clip') / 'tiny_clip.pt')
    torch.save(model.state_dict(), path)
    return path, model.visual.state_dict()


def test_targets_are_the_projected_last_tokens(weights):
    path, visual_state = weights
    teacher = CLIPTeacher('ViT-B-16', checkpoint=path,
                          model_kwargs=TINY_CLIP).train()
    assert not teacher.training and not teacher.visual.training
    assert not any(p.requires_grad for p in teacher.parameters())
    assert teacher.grid_size == (4, 4) and teacher.embed_dims == 24
    torch.testing.assert_close(teacher.visual.proj, visual_state['proj'])

    images = torch.rand(2, 3, 32, 32)
    targets = teacher(images)
    assert targets.shape == (2, 16, 24) and not targets.requires_grad
    visual = teacher.visual
    visual.output_tokens = True
    _, tokens = visual((images - teacher.mean) / teacher.std)
    torch.testing.assert_close(targets, tokens @ visual.proj)
    # Other sizes are resized to the teacher's.
    assert teacher(torch.rand(1, 3, 48, 48)).shape == (1, 16, 24)


def test_weights_are_neither_saved_nor_loaded(weights):
    path, _ = weights
    teacher = CLIPTeacher('ViT-B-16', checkpoint=path,
                          model_kwargs=TINY_CLIP)
    assert teacher.state_dict() == {}
    proj = teacher.visual.proj.clone()
    teacher.load_state_dict({'visual.proj': torch.zeros_like(proj)},
                            strict=True)
    torch.testing.assert_close(teacher.visual.proj, proj)


def test_nothing_is_downloaded(tmp_path):
    with pytest.raises(ValueError, match='would be downloaded'):
        CLIPTeacher('hf-hub:timm/vit_base_patch16_clip_224.openai')
    with pytest.raises(FileNotFoundError, match='model.teacher.checkpoint'):
        CLIPTeacher('ViT-B-16', checkpoint=str(tmp_path / 'missing.bin'))
    with pytest.raises(FileNotFoundError, match='model.teacher.model_name'):
        CLIPTeacher(f'local-dir:{tmp_path / "missing"}')
