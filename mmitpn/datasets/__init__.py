from .fashion_mnist import FashionMNIST, read_idx_images, read_idx_labels

__all__ = ['FashionMNIST', 'read_idx_images', 'read_idx_labels']
