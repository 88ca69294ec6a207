"""lr schedules that follow the run: one train_cfg override sets warmup,
decay and lr steps; the recipes' own lengths give the official bounds."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmitpn.engine.schedulers.run_length import warmup_steps

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCHEDULES = osp.join(REPO, 'configs', '_base_', 'schedules')


def _build(cfg, end=None, epoch_length=None, lr=1.0):
    """A scheduler built as mmengine's runner builds it: ``end`` is the run's
    end when the config has none."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    cfg = dict(cfg)
    if end is not None:
        cfg.setdefault('end', end)
    return optimizer, PARAM_SCHEDULERS.build(
        cfg, default_args=dict(optimizer=optimizer,
                               epoch_length=epoch_length))


def _lrs(optimizer, schedulers, steps):
    """The lr of each step of a run, stepping as ParamSchedulerHook does."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return lrs


@pytest.mark.parametrize('warmup,run_end,expected', [
    (500, 88000, 500),  # the recipe's warmup where it fits
    (40, 400, 40),
    (500, 20, 5),  # a quarter of a short run
    (500, 4, 2),  # but at least two steps
    (1, 100, 2),
])
def test_warmup_steps(warmup, run_end, expected):
    assert warmup_steps(warmup, run_end) == expected


def test_short_run_warms_up_then_decays_to_zero():
    """The seg recipe (1500 warmup iterations, poly to 0) on a 20-step
    run: a 5-step warmup to the full lr, then poly to 0 at the last step."""
    optimizer, warmup = _build(
        dict(type='mmitpn.LinearWarmupLR', warmup=1500, start_factor=0.1,
             by_epoch=False), end=20)
    schedulers = [warmup]
    schedulers.append(_build(
        dict(type='mmitpn.PolyAfterWarmupLR', warmup=1500, power=1.0,
             eta_min=0., by_epoch=False), end=20)[1])
    # both on one optimizer, as in a run
    schedulers[1].optimizer = optimizer
    lrs = _lrs(optimizer, schedulers, 20)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[:5] == sorted(lrs[:5])
    assert lrs[5:] == sorted(lrs[5:], reverse=True)
    assert lrs[-1] == pytest.approx(0.)
    assert (warmup.begin, warmup.end) == (0, 5)
    assert (schedulers[1].begin, schedulers[1].end) == (5, 20)


@pytest.mark.parametrize('epochs,bounds', [
    (400, (400, 4000)),  # the recipe: 40 of 400 epochs, 10 iterations each
    (2, (5, 20)),  # a 20-iteration run: a quarter of it
])
def test_epoch_based_recipe_converted_to_iterations(epochs, bounds):
    common = dict(by_epoch=True, convert_to_iter_based=True)
    _, warmup = _build(dict(type='mmitpn.LinearWarmupLR', warmup=40,
                            start_factor=1e-4, **common),
                       end=epochs, epoch_length=10)
    _, cosine = _build(dict(type='mmitpn.CosineAnnealingAfterWarmupLR',
                            warmup=40, eta_min=0., **common),
                       end=epochs, epoch_length=10)
    assert not warmup.by_epoch and not cosine.by_epoch
    assert (warmup.begin, warmup.end) == (0, bounds[0])
    assert (cosine.begin, cosine.end) == bounds
    assert cosine.T_max == bounds[1] - bounds[0]


@pytest.mark.parametrize('epochs,milestones', [(12, [9, 11]),
                                               (36, [27, 33]), (4, [3, 4])])
def test_multistep_at_fractions_of_the_run(epochs, milestones):
    _, scheduler = _build(
        dict(type='mmitpn.MultiStepFractionLR',
             milestone_fractions=(3 / 4, 11 / 12), gamma=0.1,
             by_epoch=True), end=epochs)
    assert sorted(scheduler.milestones.elements()) == milestones
    assert (scheduler.begin, scheduler.end) == (0, epochs)


@pytest.mark.parametrize('cfg,error,match', [
    (dict(type='mmitpn.LinearWarmupLR', warmup=5), ValueError,
     'got no end.*train_cfg.max_epochs / max_iters'),
    (dict(type='mmitpn.PolyAfterWarmupLR', warmup=5, end=10, begin=5),
     TypeError, 'runs from the end of the warmup.*remove begin'),
    (dict(type='mmitpn.CosineAnnealingAfterWarmupLR', warmup=5, end=10,
          T_max=3, eta_min=0.), TypeError, 'remove T_max'),
    (dict(type='mmitpn.LinearWarmupLR', warmup=0, end=10), ValueError,
     'warmup must be positive.*remove the LinearWarmupLR'),
    (dict(type='mmitpn.PolyAfterWarmupLR', warmup=5, end=2), ValueError,
     'a run of 2 steps leaves no step after a warmup of 2.*at least 3'),
    (dict(type='mmitpn.MultiStepFractionLR', milestone_fractions=(0.9, 0.5),
          end=10), ValueError, 'increasing fractions of the run'),
    (dict(type='mmitpn.MultiStepFractionLR', milestone_fractions=(9, ),
          end=12), ValueError, r'each in \(0, 1\)'),
    (dict(type='mmitpn.MultiStepFractionLR', milestone_fractions=(0.5, ),
          milestones=[3], end=12), TypeError, 'remove milestones'),
])
def test_bad_settings_are_named(cfg, error, match):
    with pytest.raises(error, match=match):
        _build(cfg)


class _Samples(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.full((2, ), float(i)))


class _Model(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        return dict(loss=self.fc(x).pow(2).mean())


def _schedule_bounds(tmp_path, schedule, **train_cfg):
    """(begin, end) of each scheduler of a schedule base as a runner builds
    them, with ``train_cfg`` merged in as by --cfg-options."""
    cfg = Config.fromfile(osp.join(SCHEDULES, schedule))
    cfg.train_cfg.update(train_cfg)
    cfg.train_cfg.pop('val_interval', None)
    runner = Runner(
        model=_Model(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=_Samples(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),  # 4 per epoch
        train_cfg=cfg.train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)))
    # what Runner.train() builds before the schedulers
    runner.train_loop
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    schedulers = runner.build_param_scheduler(cfg.param_scheduler)
    return [(s.begin, s.end) for s in schedulers]


@pytest.mark.parametrize('schedule,override,recipe,shortened', [
    ('itpn-seg_adamw_160k.py', dict(max_iters=20),
     [(0, 1500), (1500, 160000)], [(0, 5), (5, 20)]),
    # 4 iterations per epoch here
    ('itpn_pretrain_pixel_adamw.py', dict(max_epochs=3),
     [(0, 160), (160, 1600)], [(0, 3), (3, 12)]),
    ('itpn_pretrain_pixel_adamw_1600e.py', dict(max_epochs=3),
     [(0, 160), (160, 6400)], [(0, 3), (3, 12)]),
    # the warmup in iterations (500, capped at a quarter of 36 x 4), the lr
    # steps in epochs
    ('itpn-det_adamw_3x.py', dict(max_epochs=4),
     [(0, 36), (0, 36)], [(0, 4), (0, 4)]),
])
def test_one_override_sets_the_schedule(tmp_path, schedule, override,
                                        recipe, shortened):
    assert _schedule_bounds(tmp_path / 'recipe', schedule) == recipe
    assert _schedule_bounds(tmp_path / 'short', schedule,
                            **override) == shortened
