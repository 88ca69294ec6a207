"""Reading the config a tool is given."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """The config file at ``path`` with ``--cfg-options`` merged in.

    Raises:
        SystemExit: ``path`` is no file (a tool's usage error).
    """
    if not osp.isfile(path):
        raise SystemExit(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
