"""A folder of unlabeled images for pre-training, with errors that say how
to point the config at the images."""
import os
import os.path as osp

from mmengine.fileio import LocalBackend, get_file_backend
from mmpretrain.datasets import CustomDataset

from mmitpn.registry import DATASETS

DATA_ROOT_KEY = 'train_dataloader.dataset.data_root'


@DATASETS.register_module()
class ImageFolder(CustomDataset):
    """mmpretrain's :class:`CustomDataset` that fails clearly on a missing
    or empty folder.

    All arguments are :class:`CustomDataset`'s; without ``ann_file`` every
    image under ``data_root`` / ``data_prefix`` (recursively, any of its
    ``extensions``) is a sample. The plain class reports a missing folder as
    a bare ``No such file or directory`` and an empty one as ``Found 0
    files``; this one names the folder, the config key and the fix.
    """

    def _find_samples(self):
        folder = self.img_prefix
        backend = get_file_backend(folder, enable_singleton=True)
        fix = (f'Point the config at your images, e.g. --cfg-options '
               f'{DATA_ROOT_KEY}=/path/to/images')
        if isinstance(backend, LocalBackend):
            where = (f'{folder!r}' if osp.isabs(folder) else
                     f'{folder!r} (relative to {os.getcwd()})')
            if not osp.isdir(folder):
                raise FileNotFoundError(
                    f'image folder not found: {where}. {fix}.')
            files = backend.list_dir_or_file(
                folder, list_dir=False, list_file=True, recursive=True)
            if not any(self.is_valid_file(f) for f in files):
                raise FileNotFoundError(
                    f'no images in {where} or its subfolders (looked for '
                    f'{", ".join(sorted(self.extensions))}). {fix}, or add '
                    'images with one of these extensions.')
        return super()._find_samples()
