from .fashion_mnist import FashionMNIST, read_idx_images, read_idx_labels
from .tiny_real_seg import TinyRealSegDataset

__all__ = [
    'FashionMNIST', 'read_idx_images', 'read_idx_labels', 'TinyRealSegDataset'
]
