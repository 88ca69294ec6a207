"""A folder of unlabeled images for pre-training, with errors that say how
to point the config at the images."""
import os
import os.path as osp

import mmcv
from mmengine.fileio import LocalBackend, get, get_file_backend
from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset

from mmitpn.registry import DATASETS
from . import DataError

DATA_ROOT_KEY = 'train_dataloader.dataset.data_root'


@DATASETS.register_module()
class ImageFolder(CustomDataset):
    """mmpretrain's :class:`CustomDataset` that fails clearly on a missing
    or empty folder.

    Without ``ann_file`` every image under ``data_root`` / ``data_prefix``
    (recursively, any of its ``extensions``) is a sample. The plain class
    reports a missing folder as a bare ``No such file or directory`` and an
    empty one as ``Found 0 files``; this one names the folder, the config
    key and the fix. An image that cannot be decoded stops the run naming
    the file, unless ``skip_unreadable=True``: then it is logged, counted
    and replaced by another sample (mmengine's refetch of a ``None``
    sample).

    Args:
        skip_unreadable (bool): Skip images that cannot be read or decoded
            instead of stopping. Defaults to False.
        **kwargs: :class:`CustomDataset`'s arguments.
    """

    def __init__(self, *args, skip_unreadable: bool = False, **kwargs):
        self.skip_unreadable = skip_unreadable
        self.unreadable = []  # skipped files, in this process
        super().__init__(*args, **kwargs)

    def prepare_data(self, idx):
        try:
            return super().prepare_data(idx)
        except Exception as err:
            path = self.get_data_info(idx).get('img_path')
            if path is None or _decodes(path):
                raise  # not the file's fault
            if not self.skip_unreadable:
                raise DataError(
                    f'cannot read or decode the image {path} '
                    f'({type(err).__name__}: {err}). Remove or replace it, '
                    'or set '
                    'train_dataloader.dataset.skip_unreadable=True to skip '
                    'unreadable images (each is logged and counted).') \
                    from err
            self.unreadable.append(path)
            print_log(
                f'skipped unreadable image {path} ({len(self.unreadable)} '
                'skipped so far in this process)',
                logger='current', level=30)
            return None  # mmengine then draws another sample

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


def _decodes(path: str) -> bool:
    """Whether ``path`` can be read and decoded as an image."""
    try:
        return mmcv.imfrombytes(get(path)) is not None
    except Exception:  # unreadable or undecodable, whatever the backend
        return False
