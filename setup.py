"""mmitpn: Integrally Pre-Trained Transformer Pyramid Networks for OpenMMLab."""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
# What `mim train/test/run mmitpn ...` and the model-by-name look-ups
# (mmitpn/model_index.py) read from an installed OpenMMLab package: its
# configs, tools and model index under <package>/.mim.
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_requirements(name):
    """Requirement lines of ``requirements/<name>.txt`` without comments."""
    with open(osp.join(HERE, 'requirements', name), encoding='utf-8') as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith(('#', '-'))
        ]


def read_version():
    namespace = {}
    with open(osp.join(HERE, 'mmitpn', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), namespace)
    return namespace['__version__']


class BuildPyWithMim(build_py):
    """Also copies ``MIM_FILES`` into ``mmitpn/.mim`` of the build, so that
    wheels (``pip install .``) carry them. Editable installs need no copy:
    they read the checkout itself."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        mim_dir = osp.join(self.build_lib, 'mmitpn', '.mim')
        # Start afresh so that files deleted from the checkout leave too.
        shutil.rmtree(mim_dir, ignore_errors=True)
        os.makedirs(mim_dir)
        for name in MIM_FILES:
            src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
            if osp.isdir(src):
                shutil.copytree(
                    src, dst,
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            else:
                shutil.copyfile(src, dst)


with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='mmitpn',
    version=read_version(),
    description='Integrally Pre-Trained Transformer Pyramid Networks '
    '(iTPN) for OpenMMLab',
    long_description=long_description,
    long_description_content_type='text/markdown',
    keywords='computer vision, self-supervised learning, detection, '
    'segmentation, hierarchical vision transformer',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,
    cmdclass={'build_py': BuildPyWithMim},
    python_requires='>=3.9',
    classifiers=[
        'Operating System :: OS Independent',
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    license='Apache License 2.0',
    # torch and mmcv are ranges, not pins: an environment that already has
    # working builds keeps them.
    install_requires=read_requirements('runtime.txt') +
    read_requirements('mminstall.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt'),
        'all': read_requirements('tests.txt') +
        read_requirements('optional.txt'),
    },
    zip_safe=False)
