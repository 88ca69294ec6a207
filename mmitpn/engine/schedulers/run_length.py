"""lr schedules that follow the length of the run.

mmengine ends a parameter scheduler whose config has no ``end`` at the train
loop's end (``train_cfg.max_epochs`` or ``max_iters``), but a warmup and the
decay after it have fixed bounds, so shortening a run took an override of
each: with ``--cfg-options train_cfg.max_iters=20`` alone, the segmentation
recipe spent all 20 iterations in its 1500-iteration warmup and never
decayed (and mmengine refuses to build a decay that would begin after the
run's end). These schedulers take their bounds from the run:

- :class:`LinearWarmupLR` warms up for ``warmup`` steps, but for at most
  :data:`MAX_WARMUP_SHARE` of the run;
- :class:`CosineAnnealingAfterWarmupLR` and :class:`PolyAfterWarmupLR` decay
  from the end of that warmup to the end of the run;
- :class:`MultiStepFractionLR` steps the lr down at fractions of the run.

Leave ``end`` out of their configs: the runner fills in the run's end (in the
scheduler's unit; with ``convert_to_iter_based`` it is converted to
iterations together with ``warmup``). A config then writes, e.g.::

    param_scheduler = [
        dict(type='mmitpn.LinearWarmupLR', warmup=40, start_factor=1e-4,
             by_epoch=True, convert_to_iter_based=True),
        dict(type='mmitpn.CosineAnnealingAfterWarmupLR', warmup=40,
             eta_min=0., by_epoch=True, convert_to_iter_based=True),
    ]
    train_cfg = dict(max_epochs=400)

and ``train_cfg.max_epochs=800`` or ``=2`` is the only change a longer or a
shorter run needs. The built schedulers are mmengine's, with their state
dicts, so checkpoints and ``--resume`` work as with mmengine's own.
"""
from typing import Sequence

from mmengine.optim.scheduler import (CosineAnnealingLR, LinearLR,
                                      MultiStepLR, PolyLR)
from mmengine.optim.scheduler.param_scheduler import INF

from mmitpn.registry import PARAM_SCHEDULERS

# A warmup longer than this share of the run is shortened to it, so that a
# short run (a smoke test, a quick look at a new data set) still reaches the
# full lr and decays. The official recipes warm up for at most 20% of their
# runs (CLIP fine-tuning: 20 of 100 epochs), which this leaves as they are.
MAX_WARMUP_SHARE = 0.25


def warmup_steps(warmup: float, run_end: float) -> int:
    """Steps of a ``warmup``-step warmup in a run of ``run_end`` steps:
    ``warmup``, but at most ``MAX_WARMUP_SHARE`` of the run, in whole steps
    (rounded down) and at least two: mmengine's LinearLR reaches the full lr
    at its last step, and a one-step LinearLR never leaves its start
    factor."""
    return max(2, int(min(warmup, run_end * MAX_WARMUP_SHARE)))


def _check_run_end(name: str, end: float) -> None:
    if end == INF:
        raise ValueError(
            f'{name} takes its bounds from the run and got no end: leave '
            '`end` out of its config inside a runner with a train loop (the '
            'runner then sets it to train_cfg.max_epochs / max_iters), or '
            'pass end= when building it yourself')


def _refuse(name: str, kwargs: dict, keys: Sequence[str], why: str) -> None:
    given = [key for key in keys if key in kwargs]
    if given:
        raise TypeError(f'{name} {why}; remove {", ".join(given)} from its '
                        'config')


class _RunLengthMixin:
    """Converts ``warmup`` and ``end`` from epochs to iterations for
    ``convert_to_iter_based`` (mmengine's own conversion knows only its
    schedulers' arguments)."""

    @classmethod
    def build_iter_from_epoch(cls, *args, by_epoch: bool = True,
                              epoch_length: int = None, **kwargs):
        if not by_epoch:
            raise ValueError(
                f'{cls.__name__}: convert_to_iter_based converts an epoch-'
                'based schedule and needs by_epoch=True')
        if not epoch_length or epoch_length <= 0:
            raise ValueError(f'{cls.__name__}: convert_to_iter_based needs '
                             f'the epoch length, got {epoch_length!r}')
        for key in ('warmup', 'end'):
            if kwargs.get(key, INF) != INF:
                kwargs[key] = kwargs[key] * epoch_length
        return cls(*args, by_epoch=False, **kwargs)


@PARAM_SCHEDULERS.register_module()
class LinearWarmupLR(_RunLengthMixin, LinearLR):
    """mmengine's :class:`~mmengine.optim.LinearLR` from step 0 over a
    warmup of ``warmup`` steps, shortened to ``MAX_WARMUP_SHARE`` of the
    run when the run is short (see :func:`warmup_steps`).

    Args:
        optimizer: The optimizer (wrapper); the runner passes it.
        warmup (float): Warmup length in the scheduler's unit (epochs with
            ``by_epoch=True``, also under ``convert_to_iter_based``).
        end (float): The run's end; leave it out of the config and the
            runner sets it.
        **kwargs: :class:`~mmengine.optim.LinearLR`'s other arguments
            (``start_factor``, ``end_factor``, ``by_epoch``, ...), not
            ``begin``.
    """

    def __init__(self, optimizer, warmup: float, end: float = INF,
                 **kwargs):
        name = type(self).__name__
        _refuse(name, kwargs, ('begin', ),
                'starts at step 0 and ends after `warmup` steps')
        _check_run_end(name, end)
        if warmup <= 0:
            raise ValueError(
                f'{name}: warmup must be positive, got {warmup!r}; to train '
                f'without warmup, remove the {name} from param_scheduler')
        super().__init__(optimizer, begin=0, end=warmup_steps(warmup, end),
                         **kwargs)


class _AfterWarmupMixin(_RunLengthMixin):
    """Runs from the end of a :class:`LinearWarmupLR` of the same
    ``warmup`` to ``end``, the run's end.

    Args:
        optimizer: The optimizer (wrapper); the runner passes it.
        warmup (float): The warmup's length as given to
            :class:`LinearWarmupLR` (0: from step 0).
        end (float): The run's end; leave it out of the config.
        **kwargs: The mmengine scheduler's other arguments, not ``begin``
            and ``T_max``.
    """

    def __init__(self, optimizer, warmup: float, end: float = INF,
                 **kwargs):
        name = type(self).__name__
        _refuse(name, kwargs, ('begin', 'T_max'),
                'runs from the end of the warmup to the end of the run')
        _check_run_end(name, end)
        begin = warmup_steps(warmup, end) if warmup > 0 else 0
        if begin >= end:
            raise ValueError(
                f'{name}: a run of {end} steps leaves no step after a warmup '
                f'of {begin}; train for at least {begin + 1} steps')
        super().__init__(optimizer, begin=begin, end=end, **kwargs)


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingAfterWarmupLR(_AfterWarmupMixin, CosineAnnealingLR):
    """mmengine's :class:`~mmengine.optim.CosineAnnealingLR` (``eta_min`` or
    ``eta_min_ratio``) after the warmup; ``T_max`` is the rest of the run.
    """


@PARAM_SCHEDULERS.register_module()
class PolyAfterWarmupLR(_AfterWarmupMixin, PolyLR):
    """mmengine's :class:`~mmengine.optim.PolyLR` (``power``, ``eta_min``)
    after the warmup, to the end of the run."""


@PARAM_SCHEDULERS.register_module()
class MultiStepFractionLR(_RunLengthMixin, MultiStepLR):
    """mmengine's :class:`~mmengine.optim.MultiStepLR` with its milestones at
    fractions of the run (rounded to whole steps): ``(0.75, 11 / 12)`` steps
    after epochs 9 and 11 of 12, or 27 and 33 of 36.

    Args:
        optimizer: The optimizer (wrapper); the runner passes it.
        milestone_fractions (Sequence[float]): Increasing, each in (0, 1).
        end (float): The run's end; leave it out of the config.
        **kwargs: ``gamma``, ``by_epoch``, ...
    """

    def __init__(self, optimizer, milestone_fractions: Sequence[float],
                 end: float = INF, **kwargs):
        name = type(self).__name__
        _refuse(name, kwargs, ('begin', 'milestones'),
                'places its milestones at milestone_fractions of the run')
        _check_run_end(name, end)
        fractions = list(milestone_fractions)
        if not fractions or any(not 0 < f < 1 for f in fractions) or \
                fractions != sorted(fractions):
            raise ValueError(
                f'{name}: milestone_fractions must be increasing fractions of '
                f'the run, each in (0, 1), got {milestone_fractions!r}')
        super().__init__(
            optimizer,
            milestones=[round(f * end) for f in fractions],
            begin=0,
            end=end,
            **kwargs)
