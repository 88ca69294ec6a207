#!/usr/bin/env bash
# One-step environment for mmitpn (`make env`).
#
# The virtualenv lives outside the repo, in a cache keyed by the requirement
# files, and is linked into the repo as `.venv`, so a fresh clone reuses it in
# seconds. mmcv 2.1.0 with compiled ops has no wheel for current torch: it is
# built once from the PyPI sdist (with the fixes today's torch needs) and the
# wheel is cached, so a machine never compiles it twice.
#
# Environment variables:
#   PYTHON          interpreter to build the venv from (default: python3)
#   MMITPN_CACHE    cache folder (default: ~/.cache/mmitpn)
#   MMITPN_NO_APT=1 do not install the demo data with apt-get
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
CACHE="${MMITPN_CACHE:-$HOME/.cache/mmitpn}"
MMCV_VERSION=2.1.0
FASHION_MNIST_DIR=/usr/share/datasets/fashion-mnist

say() { printf '[mmitpn env] %s\n' "$*"; }
# Runs a pip command without the warnings that find-links/index paths lacking
# a package folder print for every package; real errors still show.
quiet_pip() {
    "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}
die() { printf '[mmitpn env] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH. Install Python >= 3.9 or set PYTHON=/path/to/python3."
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    die "$("$PYTHON" -V) is too old: mmitpn needs Python >= 3.9 (set PYTHON=...)."
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
    die "'$PYTHON' lacks the venv/ensurepip modules. On Debian/Ubuntu: apt-get install python3-venv."
PY_TAG="$("$PYTHON" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"

KEY="$(cat "$ROOT"/requirements/*.txt "$ROOT/tools/setup_env.sh" | sha256sum | cut -c1-12)"
VENV="$CACHE/venv-$PY_TAG-$KEY"
READY="$VENV/.mmitpn-ready"
mkdir -p "$CACHE"

link_venv() {
    if [ "$(readlink "$ROOT/.venv" 2>/dev/null)" != "$VENV" ]; then
        [ -e "$ROOT/.venv" ] && [ ! -L "$ROOT/.venv" ] &&
            die "$ROOT/.venv exists and is not a link made by this script; move it away and rerun."
        ln -sfn "$VENV" "$ROOT/.venv"
    fi
}

# The cached venv serves every clone; point its editable mmitpn at this one.
point_mmitpn_here() {
    local where
    where="$(cd /tmp && "$VENV/bin/python" -c 'import mmitpn, os; print(os.path.dirname(os.path.dirname(os.path.abspath(mmitpn.__file__))))' 2>/dev/null || true)"
    if [ "$where" != "$ROOT" ]; then
        say "installing mmitpn from $ROOT (editable)"
        quiet_pip "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" ||
            die "pip could not install mmitpn from $ROOT."
    fi
}

install_demo_data() {
    if [ -f "$FASHION_MNIST_DIR/train-images-idx3-ubyte.gz" ]; then
        return
    fi
    if [ "${MMITPN_NO_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null; then
        say "NOTE: the demo data (Fashion-MNIST) is not installed and apt-get is not used here."
        say "      On Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist"
        say "      Elsewhere: put {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz from"
        say "      github.com/zalandoresearch/fashion-mnist into a folder and pass it as data_root."
        return
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
    say "installing the demo data: apt-get install dataset-fashion-mnist"
    if ! { $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 ||
           { $sudo apt-get update -q >/dev/null 2>&1 &&
             $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; }; then
        say "NOTE: could not install dataset-fashion-mnist (no root or no apt access)."
        say "      Run: sudo apt-get install dataset-fashion-mnist   (only the demo needs it)"
    fi
}

if [ -f "$READY" ]; then
    link_venv
    point_mmitpn_here
    install_demo_data
    say "ready: .venv -> $VENV"
    exit 0
fi

# ---------------------------------------------------------------- fresh venv
free_gb="$(df -Pk "$CACHE" | awk 'NR==2 {print int($4/1024/1024)}')"
[ "$free_gb" -ge 12 ] || die "only ${free_gb} GiB free under $CACHE; the environment needs about 12 GiB (set MMITPN_CACHE to a bigger disk)."

# A Python that already has a working torch and mmcv-with-ops keeps them.
venv_flags=()
if "$PYTHON" - <<'EOF' 2>/dev/null
import torch  # noqa: F401
import mmcv
from mmcv.ops import nms  # noqa: F401
from packaging.version import Version
assert Version('2.0.0rc4') <= Version(mmcv.__version__) < Version('2.2.0')
EOF
then
    say "reusing the torch and mmcv already installed for $PYTHON"
    venv_flags+=(--system-site-packages)
fi

say "creating $VENV (about 5 minutes; 25 more if mmcv must be compiled)"
rm -rf "$VENV"
"$PYTHON" -m venv "${venv_flags[@]}" "$VENV"
PIP=(quiet_pip "$VENV/bin/python" -m pip install -q -c "$ROOT/requirements/constraints.txt")
"${PIP[@]}" --upgrade pip 'setuptools<82' wheel ninja packaging

if ! "$VENV/bin/python" -c 'import torch, torchvision' 2>/dev/null; then
    say "installing torch and torchvision"
    "${PIP[@]}" torch torchvision
fi
TORCH_VERSION="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"

# CUDA or CPU kernels, and the cache key of the wheel (tools/mmcv_build_plan.py).
plan="$("$VENV/bin/python" "$ROOT/tools/mmcv_build_plan.py" 2>/dev/null)" ||
    die "could not decide how to build mmcv (python tools/mmcv_build_plan.py fails)."
eval "$plan"
[ -n "$MMCV_PLAN_NOTE" ] && say "NOTE: $MMCV_PLAN_NOTE"

# mmcv's compiled ops import, with CUDA kernels when the plan wants them.
mmcv_has_ops() {
    "$VENV/bin/python" -c 'import sys
from mmcv.ops import RoIAlign, get_compiling_cuda_version, nms
sys.exit(sys.argv[1] == "cuda" and get_compiling_cuda_version() == "not available")' "$MMCV_OPS" 2>/dev/null
}

build_mmcv_wheel() {
    local out="$1" work
    "$VENV/bin/python" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
        die "Python headers (Python.h) are missing; they are needed to compile mmcv. On Debian/Ubuntu: apt-get install python3-dev."
    command -v c++ >/dev/null || command -v g++ >/dev/null ||
        die "no C++ compiler; it is needed to compile mmcv. On Debian/Ubuntu: apt-get install g++."
    work="$(mktemp -d "$CACHE/mmcv-build.XXXXXX")"
    say "downloading the mmcv $MMCV_VERSION sdist"
    # Without --no-build-isolation pip prepares the sdist's metadata with the
    # newest setuptools, which has no pkg_resources for mmcv's setup.py.
    quiet_pip "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: \
        --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work" ||
        die "could not download the mmcv $MMCV_VERSION sdist from PyPI."
    tar xzf "$work"/mmcv-*.tar.gz -C "$work"
    # mmcv's setup.py forces -std=c++17; torch >= 2.10's headers need C++20.
    if "$VENV/bin/python" -c 'import torch, sys; v = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 10))'; then
        sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-$MMCV_VERSION/setup.py"
    fi
    local jobs log start n kernels
    jobs="$(nproc 2>/dev/null || echo 2)"
    log="$work/build.log"
    # mmcv's setup.py builds CUDA kernels whenever torch sees a GPU; the plan
    # decides instead.
    if [ "$MMCV_OPS" = cuda ]; then
        kernels=(FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$MMCV_ARCH_LIST")
    else
        kernels=(FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=)
    fi
    say "compiling mmcv $MMCV_VERSION with $MMCV_OPS ops${MMCV_ARCH_LIST:+ for $MMCV_ARCH_LIST} against torch $TORCH_VERSION on $jobs cores (about 25 minutes on 2 cores; log: $log)"
    start=$SECONDS
    (cd "$work/mmcv-$MMCV_VERSION" && env "${kernels[@]}" MMCV_WITH_OPS=1 MAX_JOBS="$jobs" \
        "$VENV/bin/python" -m pip wheel -v --no-build-isolation --no-deps -w "$work/dist" . >"$log" 2>&1) &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 30
        n="$(grep -o '^ *\[[0-9]*/[0-9]*\]' "$log" | tail -1 | tr -d ' []' || true)"
        say "mmcv build: ${n:-preparing} compiled, $(( (SECONDS - start) / 60 )) min elapsed"
    done
    wait "$pid" || { tail -30 "$log" >&2; die "the mmcv build failed; see $log"; }
    mkdir -p "$out.tmp"
    cp "$work"/dist/mmcv-*.whl "$out.tmp/"
    mv "$out.tmp" "$out"   # atomic: a killed build never leaves a half cache
    rm -rf "$work"
}

if ! mmcv_has_ops; then
    WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-$MMCV_WHEEL_TAG-$PY_TAG"
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        build_mmcv_wheel "$WHEEL_DIR"
    else
        say "using the cached mmcv wheel in $WHEEL_DIR"
    fi
    "${PIP[@]}" --no-deps "$WHEEL_DIR"/mmcv-*.whl
    "${PIP[@]}" addict packaging Pillow pyyaml yapf opencv-python mmengine
    mmcv_has_ops || die "mmcv was installed but its compiled $MMCV_OPS ops do not import; delete $WHEEL_DIR and rerun."
fi

say "installing mmengine, mmpretrain, mmdet, mmsegmentation, open_clip and test tools"
"${PIP[@]}" -r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/runtime.txt" \
    -r "$ROOT/requirements/tests.txt" -r "$ROOT/requirements/optional.txt"
point_mmitpn_here
"$VENV/bin/python" -c 'import mmitpn, mmdet.models, mmseg.models, mmpretrain.models, open_clip; from mmcv.ops import RoIAlign, nms' ||
    die "the environment was built but the OpenMMLab stack does not import (see above)."
touch "$READY"
link_venv
install_demo_data
say "ready: .venv -> $VENV"
