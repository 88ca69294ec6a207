"""mmengine's Runner with checked checkpoint loading."""
from mmengine.runner import Runner

from mmitpn.models.utils.checkpoint_loading import load_checkpoint_checked
from mmitpn.registry import RUNNERS


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """A ``Runner`` whose ``load_from``, ``resume`` and
    ``load_checkpoint`` refuse a checkpoint that does not fit the model.

    mmengine loads whatever matches and only warns about the rest, so a
    checkpoint of another arch passed to ``load_from`` or ``--resume`` left
    training running from random weights. Here the file is read and
    classified once (:func:`~mmitpn.models.utils.read_checkpoint`), checked
    against the model (:func:`~mmitpn.models.utils.check_model_checkpoint`:
    ``resume`` and ``strict`` loads exactly, ``load_from`` with complete
    backbone and neck) and only then loaded. ``tools/train.py`` and
    ``tools/test.py`` build it unless the config sets ``runner_type``;
    mmpretrain's, mmdet's and mmseg's own tools build it from a config with
    ``runner_type = 'mmitpn.CheckedRunner'``.
    """

    _load_purpose = 'load_from'

    def load_checkpoint(self,
                        filename: str,
                        map_location='cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        if revise_keys != [(r'^module.', '')]:
            raise ValueError(
                'CheckedRunner.load_checkpoint strips the DDP module. prefix '
                f'itself and takes no other revise_keys, got {revise_keys}')
        purpose = 'test' if strict else self._load_purpose
        checkpoint = load_checkpoint_checked(
            self.model, filename, purpose, map_location,
            after_read=lambda content: self.call_hook(
                'after_load_checkpoint', checkpoint=content))
        self._has_loaded = True
        return checkpoint

    def resume(self, filename: str, *args, **kwargs) -> None:
        self._load_purpose = 'resume'
        try:
            super().resume(filename, *args, **kwargs)
        finally:
            del self._load_purpose
