from .fashion_mnist import FashionMNIST, read_idx_images, read_idx_labels
from .image_folder import ImageFolder

__all__ = ['FashionMNIST', 'ImageFolder', 'read_idx_images', 'read_idx_labels']
