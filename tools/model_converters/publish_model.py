"""Make a release file of a checkpoint: weights and meta only, named after
its sha256.

Leaves out the optimizer state, parameter schedulers and message hub of a
training checkpoint, EMAHook's extra copy, and the teacher of an iTPN
pre-training checkpoint (EMA backbone or CLIP model; --keep-teacher keeps
it). The result is written atomically as OUT-<first 8 hex of sha256>.pth.

Example::

    python tools/model_converters/publish_model.py \\
        work_dirs/itpn-demo_fashion-mnist/iter_1500.pth \\
        work_dirs/publish/itpn-demo_fashion-mnist.pth
    # -> work_dirs/publish/itpn-demo_fashion-mnist-1a2b3c4d.pth
"""
import argparse
import os.path as osp
import sys

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.models.utils.checkpoint_files import CheckpointError  # noqa: E402
from mmitpn.tools.publishing import publish_checkpoint  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('in_file', help='checkpoint to publish')
    parser.add_argument(
        'out_file', help='output name; the sha256 prefix is added before .pth')
    parser.add_argument(
        '--keep-teacher',
        action='store_true',
        help='keep the teacher.* tensors of a pre-training checkpoint (to '
        'continue pre-training from the published file)')
    return parser.parse_args(argv)


def main(argv=None):
    """Returns the path of the published file."""
    args = parse_args(argv)
    try:
        final_file, summary = publish_checkpoint(args.in_file, args.out_file,
                                                 args.keep_teacher)
    except CheckpointError as err:
        raise SystemExit(f'{type(err).__name__}: {err}') from err
    dropped = ', '.join(summary['dropped_keys']) or 'nothing'
    print(f'left out: {dropped}; {summary["dropped_teacher"]} teacher '
          f'tensors; kept {summary["tensors"]} tensors and meta')
    print(f'published {final_file}')
    return final_file


if __name__ == '__main__':
    main()
