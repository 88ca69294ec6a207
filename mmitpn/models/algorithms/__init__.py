from .itpn import iTPN

__all__ = ['iTPN']
