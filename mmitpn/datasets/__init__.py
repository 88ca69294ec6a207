from .fashion_mnist import FashionMNIST, read_idx_images, read_idx_labels
from .image_folder import ImageFolder
from .tiny_real_seg import TinyRealSegDataset

__all__ = [
    'FashionMNIST', 'ImageFolder', 'read_idx_images', 'read_idx_labels',
    'TinyRealSegDataset'
]
