#!/usr/bin/env bash
# What tools/gpu_check.sh needs on a GPU machine that has PyTorch but no
# OpenMMLab packages and no network (the lent H200: python3 3.12, torch 2.11).
#
#   tools/gpu_carry.sh --download DIR   # here, with PyPI: about 15 MB
#   tools/gpu_carry.sh --install DIR    # there, offline: about 2 minutes
#
# --download fetches the wheels of the packages mmitpn needs that such an
# image lacks (pinned as requirements/constraints.txt pins them; pure Python,
# or built for GPU_CARRY_PYTHON_VERSION, default 3.12, on x86-64 Linux) and
# mmcv's source. --install installs the wheels without looking for anything
# else and compiles mmcv's ops there (CPU kernels: mmitpn runs NMS and
# RoIAlign of CUDA tensors on torchvision's kernels, see
# mmitpn/compat/mmcv_ops.py), for the python3 that holds torch (PYTHON).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "gpu_carry: $*" >&2; exit 1; }
[ $# -eq 2 ] || usage

pin() { grep -E "^$1==" "$ROOT/requirements/constraints.txt" | head -1; }

# Pure-Python packages, and what they need beyond the image's packages.
PURE=(
    "$(pin mmengine)" "$(pin mmpretrain)" "$(pin mmdet)" "$(pin mmsegmentation)" "$(pin open_clip_torch)"
    addict==2.4.0 termcolor==3.3.0 yapf==0.43.0 platformdirs==4.14.9 mat4py==0.6.0 modelindex==0.0.2
    model-index==0.1.11 ordered-set==4.1.0 ftfy==6.3.1 wcwidth==0.9.4 terminaltables==3.1.10
    prettytable==3.19.0 importlib-metadata==10.2.0 lazy-importer 'setuptools<82'
)
# Compiled for the target Python.
BINARY=(pycocotools==2.0.11 shapely==2.2.0)
MMCV="$(pin mmcv)"

download() {
    local dir="$1" py="${GPU_CARRY_PYTHON_VERSION:-3.12}"
    mkdir -p "$dir"
    python3 -m pip download --no-deps --only-binary=:all: -d "$dir" "${PURE[@]}"
    python3 -m pip download --no-deps --only-binary=:all: --python-version "$py" \
        --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_28_x86_64 -d "$dir" "${BINARY[@]}"
    python3 -m pip download --no-deps --no-binary=:all: --no-build-isolation -d "$dir" "$MMCV"
    echo "carry $dir ($(du -sh "$dir" | cut -f1)) for Python $py; there: tools/gpu_carry.sh --install $dir"
}

install() {
    local dir="$1" python="${PYTHON:-python3}" work
    ls "$dir"/*.whl >/dev/null 2>&1 || die "no wheels in $dir (write them with --download)"
    "$python" -m pip install --no-index --no-deps -q "$dir"/*.whl
    work="$(mktemp -d)"
    tar xzf "$dir"/mmcv-*.tar.gz -C "$work"
    # mmcv's setup.py forces -std=c++17; torch >= 2.10's headers need C++20.
    sed -i 's/-std=c++17/-std=c++20/g' "$work"/mmcv-*/setup.py
    # CPU kernels: mmcv builds CUDA ones whenever torch sees a GPU.
    (cd "$work"/mmcv-* && CUDA_VISIBLE_DEVICES='' MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" \
        "$python" -m pip install --no-index --no-deps --no-build-isolation -q .) ||
        die "the mmcv build failed"
    rm -rf "$work"
    "$python" -c 'import mmdet.models, mmseg.models, mmpretrain.models, open_clip; from mmcv.ops import nms, RoIAlign' ||
        die 'the installed packages do not import'
    echo "installed: OpenMMLab stack for $("$python" -c 'import sys; print(sys.executable)')"
}

case "$1" in
    --download) download "$2" ;;
    --install) install "$2" ;;
    *) usage ;;
esac
