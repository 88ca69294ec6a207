"""tools/analysis_tools/analyze_logs.py on mmengine scalar logs: a work dir
with a run and its resumed continuation, an epoch-based run."""
import json
import statistics

import mmcv
import pytest

from mmitpn.tools.log_analysis import read_scalar_log
from tool_test_utils import load_tool


@pytest.fixture(scope='module')
def analyze_tool():
    return load_tool('analysis_tools', 'analyze_logs.py')


def _write_run(work_dir, timestamp, records):
    folder = work_dir / timestamp / 'vis_data'
    folder.mkdir(parents=True)
    (folder /
     'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in records))
    return folder / 'scalars.json'


@pytest.fixture
def iter_based_work_dir(tmp_path):
    """Iterations 10-40 logged every 10, validation at 20; the run was
    killed after 30 and resumed from 20, so 30 is logged twice."""
    work_dir = tmp_path / 'work'

    def train(step, loss, time):
        return dict(
            lr=0.1, loss=loss, time=time, data_time=0.01, iter=step, step=step)

    _write_run(work_dir, '20260101_000000', [
        train(10, 2.0, 0.9),
        train(20, 1.5, 0.5), {
            'accuracy/top1': 40.0,
            'time': 0.2,
            'step': 20
        },
        train(30, 1.4, 0.4)
    ])
    _write_run(work_dir, '20260101_010000', [
        train(30, 1.2, 0.8),
        train(40, 1.0, 0.3), {
            'accuracy/top1': 60.0,
            'time': 0.2,
            'step': 40
        }
    ])
    return work_dir


def test_work_dir_runs_are_read_in_order(iter_based_work_dir):
    log = read_scalar_log(str(iter_based_work_dir))
    assert log.name == 'work'
    assert [r['step'] for r in log.train] == [10, 20, 30, 30, 40]
    assert [r['accuracy/top1'] for r in log.val] == [40., 60.]
    assert log.run_starts == [0, 3]
    assert not log.by_epoch
    assert log.keys() == ['accuracy/top1', 'data_time', 'loss', 'lr', 'time']


def test_train_time_leaves_out_the_first_interval_of_each_run(
        analyze_tool, iter_based_work_dir, capsys):
    (times, ) = analyze_tool.main(['cal_train_time', str(iter_based_work_dir)])
    # 0.9 (first of run 1) and 0.8 (first after resuming) are start-up
    kept = [0.5, 0.4, 0.3]
    assert times.mean == pytest.approx(statistics.fmean(kept))
    assert times.std == pytest.approx(statistics.pstdev(kept))
    assert (times.slowest, times.fastest) == ((20, 0.5), (40, 0.3))
    assert (times.intervals, times.excluded) == (3, 2)
    out = capsys.readouterr().out
    assert ('average iter time: 0.4000 s/iter (std 0.0816) over 3 logged '
            'intervals; 2 start-up intervals left out') in out

    (times, ) = analyze_tool.main(
        ['cal_train_time',
         str(iter_based_work_dir), '--include-outliers'])
    assert times.mean == pytest.approx(statistics.fmean(kept + [0.9, 0.8]))


def test_epoch_based_log_leaves_out_the_first_interval_of_each_epoch(
        analyze_tool, tmp_path):
    records = [
        dict(time=t, epoch=e, iter=i, step=s)
        for t, e, i, s in [(2., 1, 5, 5), (1., 1, 10, 10), (3., 2, 5, 15),
                           (2., 2, 10, 20)]
    ] + [{
        'coco/bbox_mAP': 0.1,
        'step': 1
    }, {
        'coco/bbox_mAP': 0.3,
        'step': 2
    }]
    log_file = _write_run(tmp_path, '20260101_000000', records)
    (times, ) = analyze_tool.main(['cal_train_time', str(log_file)])
    assert (times.mean, times.intervals) == (1.5, 2)
    assert read_scalar_log(str(log_file)).by_epoch


def test_plot_curve_draws_one_panel_per_key(analyze_tool, iter_based_work_dir,
                                            tmp_path):
    out = tmp_path / 'curves.png'
    analyze_tool.main([
        'plot_curve',
        str(iter_based_work_dir),
        str(iter_based_work_dir / '20260101_000000'), '--keys', 'loss',
        'accuracy/top1', '--legend', 'all', 'first', '--out',
        str(out)
    ])
    image = mmcv.imread(str(out))
    # two panels of 4.5 x 3.6 inches at 100 dpi
    assert image.shape == (360, 900, 3)
    assert (image < 250).any()

    with pytest.raises(
            SystemExit,
            match="'mIoU' is not logged in work; "
            'its keys: accuracy/top1, data_time, loss, lr, time'):
        analyze_tool.main([
            'plot_curve',
            str(iter_based_work_dir), '--keys', 'mIoU', '--out',
            str(out)
        ])
    with pytest.raises(SystemExit, match='no mmengine scalar log at'):
        analyze_tool.main(['cal_train_time', str(tmp_path / 'missing')])
