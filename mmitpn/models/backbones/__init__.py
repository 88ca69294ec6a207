from .itpn_hivit import iTPNHiViT

__all__ = ['iTPNHiViT']
