"""Keeps the EMA teacher of iTPN's masked feature modelling up to date."""
import math
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmitpn.registry import HOOKS


@HOOKS.register_module()
class EMATeacherHook(Hook):
    """Moving-average update of the EMA teacher of an :class:`iTPN` model.

    Every ``update_interval`` training iterations (after the optimizer step)
    ``teacher = m * teacher + (1 - m) * online`` for all backbone parameters,
    with ``m`` in the paper's convention (0.996 = slow teacher; mmengine's
    ``ExponentialMovingAverage`` calls ``1 - m`` its momentum). With
    ``end_momentum`` set, ``m`` rises from ``momentum`` to ``end_momentum``
    along a half cosine over training, as in BYOL:
    ``m_t = end - (end - momentum) * (cos(pi * t / T) + 1) / 2``.

    Before training the teacher is copied from the online backbone, unless
    the run resumed or loaded a checkpoint holding a teacher: that teacher is
    kept. Add it with ``custom_hooks = [dict(type='mmitpn.EMATeacherHook')]``.

    Args:
        momentum (float): ``m`` (paper: 0.996), or its start value.
        end_momentum (float, optional): Final ``m`` of the cosine schedule
            (1.0 in BYOL); None keeps ``m`` constant.
        update_interval (int): Iterations between two updates.
    """

    priority = 'NORMAL'

    def __init__(self,
                 momentum: float = 0.996,
                 end_momentum: Optional[float] = None,
                 update_interval: int = 1):
        for name, value in (('momentum', momentum),
                            ('end_momentum', end_momentum)):
            if value is not None and not 0. <= value <= 1.:
                raise ValueError(f'{name} must be in [0, 1], got {value}')
        if update_interval < 1:
            raise ValueError(
                f'update_interval must be >= 1, got {update_interval}')
        self.momentum = momentum
        self.end_momentum = end_momentum
        self.update_interval = update_interval
        self._teacher_loaded = False

    def momentum_at(self, progress: float) -> float:
        """``m`` after a fraction ``progress`` in [0, 1] of training."""
        if self.end_momentum is None:
            return self.momentum
        cosine = (math.cos(math.pi * progress) + 1) / 2
        return self.end_momentum - (self.end_momentum -
                                    self.momentum) * cosine

    @staticmethod
    def _algorithm(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state_dict = checkpoint.get('state_dict', checkpoint)
        self._teacher_loaded = any(
            key.startswith('teacher.') for key in state_dict)

    def before_train(self, runner) -> None:
        if self._teacher_loaded:
            runner.logger.info('EMATeacherHook: keeping the teacher of the '
                               'loaded checkpoint')
            return
        self._algorithm(runner).init_teacher()

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if self.every_n_train_iters(runner, self.update_interval):
            progress = (runner.iter + 1) / runner.max_iters
            self._algorithm(runner).update_teacher(
                self.momentum_at(progress))
