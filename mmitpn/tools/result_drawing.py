"""Drawing test predictions (``tools/test.py --show-dir / --show``) with the
visualization hook of the config's codebase.

Each codebase has its own hook and its own switches:

- mmpretrain ``VisualizationHook``: ``enable``, ``out_dir`` (one PNG per
  drawn sample, ``<index>_0.png``); the classification runtimes of this
  project have no such hook, so one is added;
- mmdet ``DetVisualizationHook``: ``draw``, ``test_out_dir`` (one image per
  test image, under the image's file name);
- mmseg ``SegVisualizationHook``: ``draw``; it draws through the
  visualizer's storage backends, so the visualizer's ``save_dir`` is the
  folder (images under ``vis_data/vis_image/`` there, as mmseg's own
  ``--show-dir``).
"""
import os.path as osp
from typing import Optional

# Short edge at which classification images are drawn: the labels written
# on a 28-pixel Fashion-MNIST image would be unreadable.
CLS_DRAW_SHORT_EDGE = 224


def enable_result_drawing(cfg,
                          show_dir: Optional[str] = None,
                          show: bool = False,
                          wait_time: float = 2.,
                          interval: int = 1) -> Optional[str]:
    """Switch the config's visualization hook on for testing, in place.

    Args:
        cfg (Config): A test config; its ``work_dir`` must be set.
        show_dir (str, optional): Where the drawn images go; a relative
            folder is taken inside the work dir.
        show (bool): Show each drawn image in a window.
        wait_time (float): Seconds each shown image stays.
        interval (int): Draw every ``interval``-th sample (mmpretrain) or
            batch (mmseg); mmdet draws every test image.

    Returns:
        str | None: The folder the images are written to, if any.
    """
    if show_dir is None and not show:
        return None
    if show_dir is not None:
        show_dir = osp.abspath(osp.join(cfg.work_dir, show_dir))
    scope = cfg.get('default_scope')
    hooks = cfg.get('default_hooks') or {}
    hook = hooks.get('visualization')
    if scope == 'mmpretrain':
        if hook is None:
            hook = dict(type='VisualizationHook')
        hook.update(
            enable=True,
            show=show,
            wait_time=wait_time,
            interval=interval,
            out_dir=show_dir)
        hook.setdefault('resize', CLS_DRAW_SHORT_EDGE)
        image_dir = show_dir
    elif scope in ('mmdet', 'mmseg'):
        if hook is None:
            raise ValueError(
                f'--show/--show-dir draw with the config\'s visualization '
                f'hook, and default_hooks has none: add default_hooks.'
                f"visualization=dict(type='"
                f"{'Det' if scope == 'mmdet' else 'Seg'}VisualizationHook') "
                f'(the {scope} default runtime has it)')
        hook.update(
            draw=True, show=show, wait_time=wait_time, interval=interval)
        if scope == 'mmdet':
            hook['test_out_dir'] = show_dir
            image_dir = show_dir
        else:
            if show_dir is not None:
                cfg.visualizer['save_dir'] = show_dir
            image_dir = show_dir and osp.join(show_dir, 'vis_data',
                                              'vis_image')
            # The hook labels each image with `runner.iter`, which builds
            # the training loop, data set included, when the config has
            # one: a test would then need the training images. A test run
            # has no use for them.
            for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                        'param_scheduler'):
                cfg[key] = None
    else:
        raise ValueError(
            f'--show/--show-dir need a config whose default_scope is '
            f"mmpretrain, mmdet or mmseg; this one's is {scope!r}")
    cfg.default_hooks = dict(hooks, visualization=hook)
    return image_dir
