"""The paper's ablations (Tables 5 and 6, Figure 4) in miniature on
Fashion-MNIST, with the demo's tiny iTPN on CPU.

Every cell is one ``tools/train.py`` run of a config in the repository (the
driver prints each command, so any cell can be rerun alone):

1. Pre-training, same budget (1500 iterations of 64 images): MIM without
   the pyramid, integral MIM, integral MIM + EMA-MFM (the demo config) and
   the same with a 3x3-conv pyramid.
2. Fine-tuning each pre-trained backbone and training from scratch, same
   budget, one run per seed, test top-1 every 100 iterations.
3. Mask R-CNN on the composed Fashion-MNIST detection set
   (``tools/dataset_converters/prepare_fashion_mnist_det.py``, made on the
   first run) from the integral + EMA-MFM checkpoint: pyramid loaded,
   pyramid random, mmdet's FPN; one run per seed.

Runs go ``--jobs`` at a time (each with cores / jobs threads), a run
starting once the pre-training it needs is done. A run whose work dir holds
its ``run.json`` (written on success) is not run again, so an interrupted
study continues where it stopped. At the end the tables and plots go to
``WORK_DIR/report.md``, ``results.json`` and ``*.png``::

    python tools/experiments/mini_ablation.py [--work-dir ...] [--jobs 2]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmengine.config import Config

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.tools.visualization import find_scalar_logs, load_loss_history

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _config(*parts: str) -> str:
    # relative to the repository root, where the runs start: the printed
    # commands can be pasted from there
    return osp.join('configs', *parts)


# name: (label, config)
PRETRAIN = {
    'no-pyramid': ('MIM, no pyramid (MAE-style)',
                   _config('pretrain',
                           'itpn-ablation_fashion-mnist_mim-no-pyramid.py')),
    'integral': ('MIM, integral (pyramid)',
                 _config('pretrain',
                         'itpn-ablation_fashion-mnist_mim-pyramid.py')),
    'integral-mfm': ('integral + EMA-MFM (C-MLP pyramid)',
                     _config('pretrain', 'itpn-demo_fashion-mnist.py')),
    'integral-mfm-conv3x3': (
        'integral + EMA-MFM, 3x3-conv pyramid',
        _config('pretrain',
                'itpn-ablation_fashion-mnist_mim-mfm-pyramid-conv3x3.py')),
}
CLS_FINETUNE = _config('cls', 'itpn-demo_fashion-mnist_finetune.py')
CLS_SCRATCH = _config('cls', 'itpn-demo_fashion-mnist_scratch.py')
CLS_EVAL_INTERVAL = 100
# name: (label, config, whether the pyramid is loaded from pre-training)
DETECTION = {
    'pyramid-loaded': ('iTPN pyramid, pre-trained',
                       _config('det', 'mask-rcnn_itpn-demo_fashion-mnist-det.py'),
                       True),
    'pyramid-random': (
        'iTPN pyramid, random',
        _config('det',
                'mask-rcnn_itpn-demo_random-pyramid_fashion-mnist-det.py'),
        False),
    'mmdet-fpn': ('mmdet FPN, random',
                  _config('det',
                          'mask-rcnn_itpn-demo_mmdet-fpn_fashion-mnist-det.py'),
                  False),
}
DET_PRETRAIN = 'integral-mfm'
# the printed name of every variant of the three stages
VARIANT_LABELS = {
    **{name: label for name, (label, _) in PRETRAIN.items()},
    'scratch': 'from scratch',
    **{name: label for name, (label, *_) in DETECTION.items()},
}
DET_DATA = 'data/fashion_mnist_det'  # the det configs' data_root
TOP1 = 'accuracy/top1'
DET_METRICS = ('coco/bbox_mAP', 'coco/segm_mAP')


@dataclass
class Run:
    """One ``tools/train.py`` run of the study."""
    stage: str  # 'pretrain', 'cls' or 'det'
    variant: str
    config: str
    work_dir: str
    options: List[str] = field(default_factory=list)
    needs: Optional[str] = None  # work dir of the pre-training it loads
    seed: Optional[int] = None

    @property
    def command(self) -> List[str]:
        cmd = [
            sys.executable,
            osp.join('tools', 'train.py'), self.config, '--work-dir',
            self.work_dir
        ]
        return cmd + (['--cfg-options', *self.options]
                      if self.options else [])

    @property
    def record_file(self) -> str:
        return osp.join(self.work_dir, 'run.json')

    def done(self) -> bool:
        return osp.isfile(self.record_file)


def final_checkpoint(pretrain_config: str, work_dir: str) -> str:
    """The checkpoint an iteration-based pre-training run ends with."""
    max_iters = Config.fromfile(osp.join(
        ROOT, pretrain_config)).train_cfg.max_iters
    return osp.join(work_dir, f'iter_{max_iters}.pth')


def plan_runs(work_dir: str, seeds: List[int],
              det_seeds: List[int]) -> List[Run]:
    """Every run of the study: the pre-training runs, then per seed the
    classification and detection runs of every variant."""
    runs, checkpoints = [], {}
    for name, (_, config) in PRETRAIN.items():
        run_dir = osp.join(work_dir, 'pretrain', name)
        runs.append(Run('pretrain', name, config, run_dir))
        checkpoints[name] = (final_checkpoint(config, run_dir), run_dir)
    cls_runs, det_runs = [], []
    for seed in seeds:
        cls_runs.append([])
        for name in [*PRETRAIN, 'scratch']:
            options = [
                f'randomness.seed={seed}',
                f'train_cfg.val_interval={CLS_EVAL_INTERVAL}'
            ]
            needs = None
            if name != 'scratch':
                checkpoint, needs = checkpoints[name]
                options.append(
                    f'model.backbone.init_cfg.checkpoint={checkpoint}')
            cls_runs[-1].append(
                Run('cls', name,
                    CLS_SCRATCH if name == 'scratch' else CLS_FINETUNE,
                    osp.join(work_dir, 'cls', f'{name}_seed{seed}'), options,
                    needs, seed))
    checkpoint, needs = checkpoints[DET_PRETRAIN]
    for seed in det_seeds:
        det_runs.append([])
        for name, (_, config, loads_pyramid) in DETECTION.items():
            options = [
                f'randomness.seed={seed}',
                f'model.backbone.init_cfg.checkpoint={checkpoint}'
            ]
            if loads_pyramid:
                options.append(f'model.neck.init_cfg.checkpoint={checkpoint}')
            det_runs[-1].append(
                Run('det', name, config,
                    osp.join(work_dir, 'det', f'{name}_seed{seed}'), options,
                    needs, seed))
    # Seed by seed, every variant of a seed together: a study cut short
    # still compares all variants on the same seeds.
    for index in range(max(len(cls_runs), len(det_runs))):
        for rounds in (cls_runs, det_runs):
            if index < len(rounds):
                runs += rounds[index]
    return runs


def run_all(runs: List[Run], jobs: int) -> bool:
    """Run what is not done yet, ``jobs`` at a time; a run waits for the
    pre-training it needs. Returns False when some run failed."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    # torch's OpenMP threads otherwise spin at barriers, which slows
    # processes sharing the cores several times
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    finished = {run.work_dir for run in runs if run.done()}
    failed = set()
    pending = [run for run in runs if not run.done()]
    running: Dict[subprocess.Popen, tuple] = {}
    while pending or running:
        for run in list(pending):
            if len(running) >= jobs:
                break
            if run.needs in failed:
                print(f'[mini ablation] skipped {run.work_dir}: its '
                      f'pre-training failed', flush=True)
                failed.add(run.work_dir)
                pending.remove(run)
            elif run.needs is None or run.needs in finished:
                os.makedirs(run.work_dir, exist_ok=True)
                print('[mini ablation] ' + ' '.join(run.command[1:]),
                      flush=True)
                log = open(osp.join(run.work_dir, 'train.out'), 'w')
                proc = subprocess.Popen(
                    run.command, env=env, stdout=log,
                    stderr=subprocess.STDOUT)
                running[proc] = (run, log, time.time())
                pending.remove(run)
        time.sleep(2)
        for proc in [p for p in running if p.poll() is not None]:
            run, log, start = running.pop(proc)
            log.close()
            wall = time.time() - start
            if proc.returncode:
                failed.add(run.work_dir)
                print(f'[mini ablation] FAILED ({proc.returncode}) '
                      f'{run.work_dir}: see {log.name}', flush=True)
                continue
            with open(run.record_file, 'w') as f:
                json.dump(dict(command=run.command[1:], wall_s=wall,
                               threads=int(threads)), f, indent=1)
            finished.add(run.work_dir)
            print(f'[mini ablation] done in {wall / 60:.1f} min: '
                  f'{run.work_dir}', flush=True)
    return not failed


def validation_curves(log_files: List[str], keys: List[str],
                      interval: int) -> Dict[str, Tuple[np.ndarray,
                                                        np.ndarray]]:
    """``{key: (iterations, values)}`` of the validation metrics ``keys``.

    mmengine logs the validation metrics of iteration-based loops under
    the epoch (0) unless the logger has ``log_metric_by_epoch=False``, so
    the iteration is taken from the order: the k-th validation is at
    iteration k * ``interval``.
    """
    values: Dict[str, List[float]] = {key: [] for key in keys}
    for log_file in log_files:
        with open(log_file) as f:
            for line in f:
                record = json.loads(line)
                for key in keys:
                    if key in record:
                        values[key].append(float(record[key]))
    return {
        key: (interval * np.arange(1, len(vals) + 1), np.array(vals))
        for key, vals in values.items() if vals
    }


def run_metrics(run: Run) -> dict:
    """Wall time, curves and final metrics of a finished run."""
    with open(run.record_file) as f:
        record = json.load(f)
    logs = find_scalar_logs(run.work_dir)
    if run.stage == 'pretrain':
        curves = load_loss_history(logs)
        keys = ['loss_mim']
    elif run.stage == 'cls':
        keys = [TOP1]
        curves = validation_curves(logs, keys, CLS_EVAL_INTERVAL)
    else:
        keys = list(DET_METRICS)
        interval = Config.fromfile(run.config).train_cfg.val_interval
        curves = validation_curves(logs, keys, interval)
    missing = [key for key in keys if key not in curves]
    if missing:
        raise RuntimeError(f'{run.work_dir}: the logs hold no {missing}')
    return dict(
        wall_s=record['wall_s'],
        curves={
            key: [steps.tolist(), values.tolist()]
            for key, (steps, values) in curves.items()
        },
        final={key: _final_value(run.stage, *curves[key])
               for key in keys})


def _final_value(stage: str, steps: np.ndarray, values: np.ndarray) -> float:
    """A run's result: the last evaluation, or for pre-training the mean
    of the losses logged over the last 100 iterations (one logged window is
    too noisy to compare runs)."""
    if stage == 'pretrain':
        return float(np.mean(values[steps > steps[-1] - 100]))
    return float(values[-1])


def _mean_spread(values: List[float]) -> str:
    values = np.asarray(values)
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return (f'{values.mean():.2f} ± {values.std(ddof=1):.2f} '
            f'({values.min():.2f}-{values.max():.2f})')


def summarize(runs: List[Run]) -> dict:
    """``{stage: {variant: {'runs': [...], ...}}}`` of the finished runs."""
    summary: Dict[str, Dict[str, dict]] = {}
    for run in runs:
        if not run.done():
            continue
        metrics = run_metrics(run)
        metrics['seed'] = run.seed
        summary.setdefault(run.stage, {}).setdefault(
            run.variant, {'runs': []})['runs'].append(metrics)
    return summary


def _mean_wall_min(cell: dict) -> float:
    return np.mean([run['wall_s'] for run in cell['runs']]) / 60


def markdown_report(summary: dict) -> str:
    """The study's tables (mean ± sample std (min-max) over seeds)."""
    lines = []
    labels = VARIANT_LABELS
    if 'pretrain' in summary:
        lines += [
            '## Pre-training', '',
            '| variant | loss_mim, last 100 iterations | wall time (min) |',
            '|---|---|---|'
        ]
        for name, cell in summary['pretrain'].items():
            (run, ) = cell['runs']
            lines.append(f'| {labels[name]} | {run["final"]["loss_mim"]:.4f}'
                         f' | {run["wall_s"] / 60:.1f} |')
        lines.append('')
    if 'cls' in summary:
        lines += [
            '## Fine-tuning, Fashion-MNIST test top-1 (%)', '',
            '| pre-training | top-1 | seeds | wall time per run (min) |',
            '|---|---|---|---|'
        ]
        for name, cell in summary['cls'].items():
            top1 = [run['final'][TOP1] for run in cell['runs']]
            lines.append(f'| {labels[name]} | {_mean_spread(top1)} | '
                         f'{len(top1)} | {_mean_wall_min(cell):.1f} |')
        lines.append('')
    if 'det' in summary:
        lines += [
            '## Mask R-CNN on composed Fashion-MNIST canvases '
            f'(backbone from "{labels[DET_PRETRAIN]}")', '',
            '| neck | bbox mAP | segm mAP | seeds | wall time per run (min) |',
            '|---|---|---|---|---|'
        ]
        for name, cell in summary['det'].items():
            maps = [[run['final'][key] * 100 for run in cell['runs']]
                    for key in DET_METRICS]
            lines.append(f'| {labels[name]} | {_mean_spread(maps[0])} | '
                         f'{_mean_spread(maps[1])} | {len(cell["runs"])} | '
                         f'{_mean_wall_min(cell):.1f} |')
        lines.append('')
    return '\n'.join(lines)


def plot_curves(summary: dict, out_dir: str) -> List[str]:
    """Figure 4 in miniature: reconstruction loss during pre-training, and
    fine-tuning accuracy / detection mAP during fine-tuning (mean over
    seeds, shaded from the lowest to the highest seed)."""
    import matplotlib
    matplotlib.use('Agg')  # no display needed
    import matplotlib.pyplot as plt

    panels = [('pretrain', ['loss_mim'], 'pre-training: loss_mim',
               'pretrain_loss_mim.png'),
              ('cls', [TOP1], 'fine-tuning: test top-1 (%)',
               'finetune_top1.png'),
              ('det', list(DET_METRICS), 'Mask R-CNN: val mAP',
               'det_map.png')]
    written = []
    for stage, keys, title, file_name in panels:
        if stage not in summary:
            continue
        fig, axes = plt.subplots(
            1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
        for ax, key in zip(axes[0], keys):
            for name, cell in summary[stage].items():
                steps = np.asarray(cell['runs'][0]['curves'][key][0])
                values = np.array([
                    run['curves'][key][1] for run in cell['runs']
                    if len(run['curves'][key][1]) == len(steps)
                ])
                ax.plot(steps, values.mean(0), label=VARIANT_LABELS[name], lw=1.3,
                        marker='o', ms=3)
                if len(values) > 1:
                    ax.fill_between(steps, values.min(0), values.max(0),
                                    alpha=.2)
            ax.set_title(key)
            ax.set_xlabel('iteration')
            ax.grid(alpha=.3)
            ax.legend(fontsize=8)
        fig.suptitle(title)
        fig.tight_layout()
        out_file = osp.join(out_dir, file_name)
        fig.savefig(out_file, dpi=100)
        plt.close(fig)
        written.append(out_file)
    return written


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir', default=osp.join(ROOT, 'work_dirs', 'mini_ablation'))
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs at a time (each gets cores / jobs threads)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='seeds of every classification cell')
    parser.add_argument('--det-seeds', type=int, nargs='+', default=[0, 1],
                        help='seeds of every detection cell')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the commands of the runs still to do')
    parser.add_argument('--report-only', action='store_true',
                        help='only write the report of the finished runs')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.jobs < 1:
        raise SystemExit('--jobs must be at least 1')
    # Paths relative to the repository root, where every run starts (and
    # so the printed commands can be pasted there).
    work_dir = osp.relpath(osp.abspath(args.work_dir), ROOT)
    os.chdir(ROOT)
    runs = plan_runs(work_dir, args.seeds, args.det_seeds)
    if args.dry_run:
        for run in runs:
            if not run.done():
                print(' '.join(run.command[1:]))
        return 0
    ok = True
    if not args.report_only:
        if not osp.isdir(osp.join(ROOT, DET_DATA)):
            subprocess.check_call([
                sys.executable,
                osp.join('tools', 'dataset_converters',
                         'prepare_fashion_mnist_det.py'), '--out-dir', DET_DATA
            ])
        ok = run_all(runs, args.jobs)
    summary = summarize(runs)
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(summary, f)
    report = markdown_report(summary)
    with open(osp.join(work_dir, 'report.md'), 'w') as f:
        f.write(report)
    plots = plot_curves(summary, work_dir)
    print(report)
    print('[mini ablation] wrote report.md, results.json, ' +
          ', '.join(osp.basename(p) for p in plots) + f' to {work_dir}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
