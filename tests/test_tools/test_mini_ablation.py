"""tools/experiments/mini_ablation.py and its pre-training variants: the
plan of runs, the dependency-aware scheduler, the report, and the configs of
the four pre-training rows."""
import dataclasses
import json
import os
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmitpn.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'experiments'))
import mini_ablation as study  # noqa: E402


def test_plan_covers_every_cell_with_its_checkpoint():
    runs = study.plan_runs('wd', seeds=[0, 1, 2], det_seeds=[0, 1])
    by_stage = {}
    for run in runs:
        by_stage.setdefault(run.stage, []).append(run)
        assert osp.isfile(osp.join(REPO, run.config)), run.config
    assert len(by_stage['pretrain']) == 4
    assert len(by_stage['cls']) == 5 * 3 and len(by_stage['det']) == 3 * 2
    pretrain_dirs = [run.work_dir for run in by_stage['pretrain']]
    # every user of a pre-training comes after it and loads its last
    # checkpoint (1500 iterations)
    for index, run in enumerate(runs):
        if run.needs is not None:
            assert pretrain_dirs.index(run.needs) < index
            checkpoint = osp.join(run.needs, 'iter_1500.pth')
            assert (f'model.backbone.init_cfg.checkpoint={checkpoint}'
                    in run.options)
        assert f'randomness.seed={run.seed}' in run.options or (
            run.stage == 'pretrain')
    scratch = [run for run in by_stage['cls'] if run.variant == 'scratch']
    assert len(scratch) == 3
    assert all(run.needs is None and run.config == study.CLS_SCRATCH
               for run in scratch)
    for run in by_stage['det']:
        assert run.needs == osp.join('wd', 'pretrain', study.DET_PRETRAIN)
        loads_neck = any('model.neck.init_cfg' in o for o in run.options)
        assert loads_neck == (run.variant == 'pyramid-loaded')
    assert len({run.work_dir for run in runs}) == len(runs)


@dataclasses.dataclass
class FakeRun(study.Run):
    """A run whose command appends its name to a shared file (or fails)."""
    trace: str = ''
    fail: bool = False

    @property
    def command(self):
        code = (f'import sys; open({self.trace!r}, "a").write('
                f'{self.work_dir!r} + "\\n"); sys.exit({int(self.fail)})')
        return [sys.executable, '-c', code]


def test_scheduler_waits_for_pretraining_skips_failed_and_done_runs(
        tmp_path):
    trace = str(tmp_path / 'trace.txt')

    def fake(name, needs=None, fail=False):
        return FakeRun('cls', name, 'cfg', str(tmp_path / name), needs=needs,
                       trace=trace, fail=fail)

    good, bad = fake('pre_good'), fake('pre_bad', fail=True)
    users = [fake(f'user{i}', needs=good.work_dir) for i in range(3)]
    orphan = fake('orphan', needs=bad.work_dir)
    done = fake('done')
    os.makedirs(done.work_dir)
    with open(done.record_file, 'w') as f:
        json.dump(dict(wall_s=1.0), f)
    ok = study.run_all([good, bad, *users, orphan, done], jobs=2)
    assert not ok
    with open(trace) as f:
        order = [osp.basename(line.strip()) for line in f]
    assert sorted(order) == sorted(['pre_good', 'pre_bad', 'user0', 'user1',
                                    'user2'])
    assert order.index('pre_good') < min(
        order.index(f'user{i}') for i in range(3))
    for run in (good, *users):
        with open(run.record_file) as f:
            assert json.load(f)['wall_s'] > 0
    assert not osp.exists(bad.record_file)
    assert not osp.exists(orphan.record_file)
    # a second call runs nothing: every successful run is recorded
    os.remove(trace)
    assert study.run_all([good, *users, done], jobs=2)
    assert not osp.exists(trace)


def _write_run(work_dir, wall_s, records):
    os.makedirs(osp.join(work_dir, '20260101_000000', 'vis_data'))
    with open(osp.join(work_dir, 'run.json'), 'w') as f:
        json.dump(dict(wall_s=wall_s), f)
    with open(
            osp.join(work_dir, '20260101_000000', 'vis_data',
                     'scalars.json'), 'w') as f:
        f.write('\n'.join(json.dumps(r) for r in records))


def test_report_tables_and_plots(tmp_path):
    runs = study.plan_runs(str(tmp_path), seeds=[0, 1], det_seeds=[0])
    for run in runs:
        if run.stage == 'pretrain':
            records = [dict(loss=1.0, loss_mim=v, step=s)
                       for s, v in ((1400, 0.5), (1450, 0.4), (1500, 0.3))]
        elif run.stage == 'cls':
            # as mmengine logs iteration-based validation: under epoch 0
            records = [{'accuracy/top1': 50. + run.seed + i, 'step': 0}
                       for i in range(3)] + [
                           {'accuracy/top1': 70. + 2 * run.seed, 'step': 0}]
        elif run.variant == 'mmdet-fpn':
            continue  # not finished: left out of the report
        else:
            records = [{'coco/bbox_mAP': 0.25, 'coco/segm_mAP': 0.2,
                        'step': 480}]
        _write_run(run.work_dir, 120., records)
    summary = study.summarize(runs)
    assert summary['pretrain']['integral']['runs'][0]['final'] == {
        'loss_mim': pytest.approx(0.35)}  # the last 100 iterations' mean
    # the k-th validation is at iteration k * interval
    curve = summary['cls']['scratch']['runs'][1]['curves']['accuracy/top1']
    assert curve == [[100, 200, 300, 400], [51., 52., 53., 72.]]
    curve = summary['det']['pyramid-loaded']['runs'][0]['curves']
    assert curve['coco/segm_mAP'] == [[200], [0.2]]
    report = study.markdown_report(summary)
    assert '| from scratch | 71.00 ± 1.41 (70.00-72.00) | 2 | 2.0 |' in report
    assert '| iTPN pyramid, pre-trained | 25.00 | 20.00 | 1 | 2.0 |' in report
    assert 'mmdet FPN' not in report
    plots = study.plot_curves(summary, str(tmp_path))
    assert [osp.basename(p) for p in plots] == [
        'pretrain_loss_mim.png', 'finetune_top1.png', 'det_map.png']
    assert all(osp.getsize(p) > 10000 for p in plots)


@pytest.mark.parametrize('variant', list(study.PRETRAIN))
def test_pretraining_variants_train_what_they_say(variant):
    cfg = Config.fromfile(osp.join(REPO, study.PRETRAIN[variant][1]))
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
    with_mfm = variant.startswith('integral-mfm')
    assert (model.neck is None) == (variant == 'no-pyramid')
    if model.neck is not None:
        assert model.neck.fusion_block == ('conv3x3' if variant.endswith(
            'conv3x3') else 'cmlp')
    assert ('mmitpn.EMATeacherHook' in hooks) == with_mfm
    # the same backbone and budget in every row
    assert cfg.train_cfg.max_iters == 1500
    assert cfg.model.backbone.arch == 'nano'
    if with_mfm:
        model.init_teacher()  # what the EMA-teacher hook does before training
    images = torch.randn(2, 3, 28, 28)
    losses = model.loss(images, [])
    expected = {'loss_mim'} | ({'loss_mfm_s4', 'loss_mfm_s8', 'loss_mfm_s16'}
                               if with_mfm else set())
    assert set(losses) == expected
    sum(losses.values()).backward()
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
