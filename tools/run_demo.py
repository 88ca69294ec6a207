"""`make demo`: the integral pre-training demo on Fashion-MNIST (main job)."""
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(ROOT, 'configs', 'pretrain',
                       'itpn-demo_fashion-mnist.py')


def main():
    if not osp.isfile(DEMO_CONFIG):
        print('[mmitpn demo] not built yet: the integral pre-training demo '
              f'({osp.relpath(DEMO_CONFIG, ROOT)}) arrives with the '
              'pre-training issue. `make test` works now.')
        return 1
    train = osp.join(ROOT, 'tools', 'train.py')
    os.execv(sys.executable, [sys.executable, train, DEMO_CONFIG])


if __name__ == '__main__':
    sys.exit(main())
