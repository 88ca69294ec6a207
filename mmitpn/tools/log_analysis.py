"""Reading mmengine's scalar logs, and the curves and iteration times of
``tools/analysis_tools/analyze_logs.py``.

mmengine writes each run (a resumed run too) into ``WORK_DIR/<timestamp>/``;
its ``vis_data/scalars.json`` (and the identical ``vis_data/<timestamp>.json``)
holds one JSON record per line. Training records carry ``iter`` (and
``epoch`` in epoch-based runs) and ``step``, the global iteration; evaluation
records carry the metrics and ``step``: the iteration, or the epoch when
the run logs metrics by epoch (mmengine's default for epoch-based runs).
"""
import glob
import json
import os.path as osp
import statistics
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

Curve = Tuple[np.ndarray, np.ndarray]


class LogAnalysisError(ValueError):
    """A log, key or option that cannot be analysed; the message says why
    and what to give instead."""


class ScalarLog(NamedTuple):
    """The records of one or more runs of a work dir, in order."""
    name: str
    train: List[dict]
    val: List[dict]
    # The index into ``train`` where each run (log file) starts.
    run_starts: List[int]

    @property
    def by_epoch(self) -> bool:
        return any('epoch' in r for r in self.train)

    def keys(self) -> List[str]:
        return sorted({k
                       for r in self.train + self.val
                       for k in r} - {'step', 'iter', 'epoch'})


def find_scalar_logs(work_dir: str) -> List[str]:
    """The ``scalars.json`` of every run in a work dir, oldest first
    (timestamps sort chronologically)."""
    return sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))


def resolve_log_files(path: str) -> List[str]:
    """The scalar logs a path stands for: a log file itself, the one of a
    run folder (``WORK_DIR/<timestamp>``), or every run of a work dir."""
    if osp.isfile(path):
        return [path]
    in_run = osp.join(path, 'vis_data', 'scalars.json')
    files = [in_run] if osp.isfile(in_run) else find_scalar_logs(path)
    if not files:
        raise LogAnalysisError(
            f'no mmengine scalar log at {path}: give a vis_data/scalars.json '
            '(or <timestamp>.json) file, a run folder WORK_DIR/<timestamp> or '
            'a work dir holding such runs')
    return files


def read_scalar_log(path: str, name: Optional[str] = None) -> ScalarLog:
    """The training and evaluation records of ``path`` (see
    :func:`resolve_log_files`), runs concatenated oldest first."""
    train, val, run_starts = [], [], []
    for log_file in resolve_log_files(path):
        run_starts.append(len(train))
        with open(log_file) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise LogAnalysisError(
                        f'{log_file}, line {number}, is no JSON '
                        f'record ({err}); is it an mmengine '
                        'scalar log?') from err
                (train if 'iter' in record else val).append(record)
    return ScalarLog(
        name or osp.basename(osp.normpath(path)), train, val, run_starts)


def scalar_curve(records: Sequence[dict], key: str) -> Curve:
    """``(steps, values)`` of ``key``, sorted by step; a step logged again
    (by a resumed run) keeps its latest value."""
    by_step = {int(r['step']): float(r[key]) for r in records if key in r}
    steps = sorted(by_step)
    return np.array(steps), np.array([by_step[s] for s in steps])


def load_loss_history(log_files: Sequence[str]) -> Dict[str, Curve]:
    """Every logged key containing ``loss`` (mmengine's total ``loss`` and
    each term the model returns) as ``{name: (steps, values)}``, logs read
    in order."""
    records = []
    for log_file in log_files:
        log = read_scalar_log(log_file)
        records += log.train + log.val
    keys = dict.fromkeys(k for r in records for k in r if 'loss' in k)
    return {k: scalar_curve(records, k) for k in keys}


def plot_scalar_curves(logs: Sequence[ScalarLog],
                       keys: Sequence[str],
                       out_file: Optional[str] = None,
                       title: Optional[str] = None,
                       legend: Optional[Sequence[str]] = None) -> None:
    """One panel per key, one line per log; evaluation metrics with dots.
    Writes ``out_file``, or shows the figure when it is None."""
    import matplotlib
    if out_file is not None:
        matplotlib.use('Agg')  # no display needed
    import matplotlib.pyplot as plt

    legend = list(legend) if legend else [log.name for log in logs]
    if len(legend) != len(logs):
        raise LogAnalysisError(
            f'{len(legend)} legend entries for {len(logs)} logs')
    fig, axes = plt.subplots(
        1, len(keys), figsize=(4.5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for log, label in zip(logs, legend):
            in_train = any(key in r for r in log.train)
            records = log.train if in_train else log.val
            steps, values = scalar_curve(records, key)
            if not len(steps):
                raise LogAnalysisError(
                    f'{key!r} is not logged in {log.name}; its keys: '
                    f'{", ".join(log.keys())}')
            ax.plot(
                steps,
                values,
                '-' if in_train else 'o-',
                lw=1.2,
                ms=3,
                label=label)
            ax.set_xlabel(
                'epoch' if log.by_epoch and not in_train else 'iteration')
        ax.set_title(key)
        ax.grid(alpha=.3)
        ax.legend(fontsize='small')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if out_file is None:
        plt.show()
    else:
        fig.savefig(out_file, dpi=100)
    plt.close(fig)


class TrainTime(NamedTuple):
    """Seconds per iteration over a log's logged intervals."""
    mean: float
    std: float
    slowest: Tuple[int, float]  # (step, seconds)
    fastest: Tuple[int, float]
    intervals: int
    excluded: int


def train_time(log: ScalarLog, include_outliers: bool = False) -> TrainTime:
    """Iteration times of a log (mmengine's ``time``: the mean over each
    logging interval). The first interval of each run, and of each epoch
    in epoch-based runs, includes the start-up (workers, caches, lazy
    initialisation) and is left out unless ``include_outliers``."""
    first = set(log.run_starts)
    for i in range(1, len(log.train)):
        if log.train[i].get('epoch') != log.train[i - 1].get('epoch'):
            first.add(i)
    timed = [(int(r['step']), float(r['time']))
             for i, r in enumerate(log.train)
             if 'time' in r and (include_outliers or i not in first)]
    if not timed:
        raise LogAnalysisError(f'{log.name} has no iteration times' + (
            '' if include_outliers else
            ' after the first interval of each run (--include-outliers '
            'counts those)'))
    times = [t for _, t in timed]
    return TrainTime(
        mean=statistics.fmean(times),
        std=statistics.pstdev(times),
        slowest=max(timed, key=lambda st: st[1]),
        fastest=min(timed, key=lambda st: st[1]),
        intervals=len(timed),
        excluded=sum(1 for r in log.train if 'time' in r) - len(timed))
