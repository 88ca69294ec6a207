#!/usr/bin/env bash
# mmitpn's GPU acceptance run: every task family trains and tests on one GPU.
#
#   tools/gpu_check.sh --prepare DATA_DIR   # once, where the data sources are
#   tools/gpu_check.sh DATA_DIR [OUT_DIR]   # on the GPU machine
#
# --prepare writes the small real data sets the checks train on, with the
# repository's own converters: a Fashion-MNIST subset (from Debian's
# dataset-fashion-mnist or FASHION_MNIST_ROOT), the tiny COCO instance set and
# the tiny segmentation set (tools/dataset_converters/, from their cached
# wheels). About 6 MB, so DATA_DIR can be carried to a machine without
# network access.
#
# The run installs nothing: it needs the stack that `make env` builds (or the
# same packages installed otherwise; PYTHON names the interpreter). It prints
# one PASS/FAIL/SKIP line per check, the benchmark tables, and exits 1 when a
# check failed. Logs and work dirs go to OUT_DIR (default work_dirs/gpu_check).
#
# GPU_CHECK_DEVICE=cpu rehearses the run on a machine without a GPU: the same
# checks with fewer iterations; NCCL and FSDP, which need CUDA, are skipped.
# GPU_CHECK_ONLY="name ..." reruns the checks named (finetune-test reads the
# checkpoint of an earlier pretrain-amp-resume in the same OUT_DIR);
# GPU_CHECK_ONLY="fast-path-parity benchmark-train benchmark-infer
# speed-targets" is the speed part alone: the compiled fast path against the
# plain one, the benchmark rows (bf16; the EMA-MFM step at batch 128 and 512
# beside mmpretrain's iTPN and MAE, inference beside timm's ViT-B; plain and
# fast paths) and issue #21's targets. GPU_CHECK_TRAIN_BATCHES="128" (or
# "512") measures one training batch size, to split the part into shorter
# runs with the same OUT_DIR; speed-targets reads what all of them wrote.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHON=${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" OMP_WAIT_POLICY=PASSIVE

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

prepare() {
    local data="$1" fmnist="${FASHION_MNIST_ROOT:-/usr/share/datasets/fashion-mnist}"
    mkdir -p "$data/fashion-mnist" || exit 1
    "$PYTHON" - "$fmnist" "$data/fashion-mnist" <<'EOF' || exit 1
import gzip
import os.path as osp
import sys

import numpy as np

from mmitpn.datasets.fashion_mnist import read_idx_images, read_idx_labels

src, dst = sys.argv[1:]
for prefix, count in (('train', 10000), ('t10k', 2000)):
    images = read_idx_images(osp.join(src, f'{prefix}-images-idx3-ubyte.gz'))
    labels = read_idx_labels(osp.join(src, f'{prefix}-labels-idx1-ubyte.gz'))
    for kind, array, magic in (('images-idx3', images[:count], 2051),
                               ('labels-idx1', labels[:count], 2049)):
        header = np.array([magic, *array.shape], '>i4').tobytes()
        with gzip.open(osp.join(dst, f'{prefix}-{kind}-ubyte.gz'), 'wb') as f:
            f.write(header + array.astype(np.uint8).tobytes())
print(f'Fashion-MNIST subset (10000 train, 2000 test images) in {dst}')
EOF
    "$PYTHON" "$ROOT/tools/dataset_converters/prepare_tiny_coco_instances.py" \
        --out-dir "$data/tiny_coco_instances" || exit 1
    "$PYTHON" "$ROOT/tools/dataset_converters/prepare_tiny_real_seg.py" \
        --out-dir "$data/tiny_real_seg" || exit 1
    echo "data for tools/gpu_check.sh written to $data ($(du -sh "$data" | cut -f1))"
}

[ $# -ge 1 ] || usage
if [ "$1" = --prepare ]; then
    [ $# -eq 2 ] || usage
    prepare "$2"
    exit 0
fi
DATA="$(cd "$1" 2>/dev/null && pwd)" || { echo "no data folder '$1' (write it with --prepare)" >&2; exit 2; }
OUT="${2:-$ROOT/work_dirs/gpu_check}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
for part in fashion-mnist/train-images-idx3-ubyte.gz tiny_coco_instances/annotations/instances.json \
        tiny_real_seg/images; do
    [ -e "$DATA/$part" ] || { echo "$DATA/$part is missing: write the data with tools/gpu_check.sh --prepare $DATA" >&2; exit 2; }
done
if [ "$DEVICE" = cuda ]; then
    "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' ||
        { echo 'torch sees no GPU (GPU_CHECK_DEVICE=cpu rehearses the run on CPU)' >&2; exit 2; }
    ITERS=300 CLS_ITERS=200 SEG_ITERS=100 DET_EPOCHS=4 BATCH=256 ROUNDS=5
    TRAIN_BATCHES=${GPU_CHECK_TRAIN_BATCHES:-128 512} INFER_BATCH=256
else
    ITERS=8 CLS_ITERS=4 SEG_ITERS=2 DET_EPOCHS=1 BATCH=16 ROUNDS=1
    TRAIN_BATCHES=2 INFER_BATCH=2
fi

FAILED=0
SECONDS=0
# check NAME COMMAND...: runs COMMAND with its output in OUT/NAME.log.
check() {
    local name="$1" start=$SECONDS
    shift
    if [ -n "${GPU_CHECK_ONLY:-}" ] && [[ " $GPU_CHECK_ONLY " != *" $name "* ]]; then
        return
    fi
    if "$@" >"$OUT/$name.log" 2>&1; then
        printf 'PASS  %-22s %4ds\n' "$name" $((SECONDS - start))
    else
        printf 'FAIL  %-22s %4ds  (see %s)\n' "$name" $((SECONDS - start)) "$OUT/$name.log"
        tail -5 "$OUT/$name.log" | sed 's/^/      /'
        FAILED=1
    fi
}
skip() { printf 'SKIP  %-22s       (%s)\n' "$1" "$2"; }
train() { "$PYTHON" "$ROOT/tools/train.py" "$@"; }
# test_metric KEY CONFIG CHECKPOINT ARGS...: tools/test.py, and KEY must be in
# the metrics it prints.
test_metric() {
    local key="$1" out
    shift
    out="$("$PYTHON" "$ROOT/tools/test.py" "$@" 2>&1)" || { echo "$out"; return 1; }
    echo "$out"
    grep -q "'$key'" <<<"$out" || { echo "no '$key' in the metrics"; return 1; }
}
last_checkpoint() { cat "$1/last_checkpoint"; }

FMNIST=(train_dataloader.dataset.data_root="$DATA/fashion-mnist")
PRETRAIN_CFG="$ROOT/configs/pretrain/itpn-demo_fashion-mnist.py"
PRETRAIN_OPTS=("${FMNIST[@]}" train_dataloader.batch_size=$BATCH default_hooks.logger.interval=10)

pretrain_then_resume() {
    local work="$OUT/pretrain" half=$((ITERS / 2))
    rm -rf "$work"
    train "$PRETRAIN_CFG" --amp --work-dir "$work" --cfg-options "${PRETRAIN_OPTS[@]}" \
        train_cfg.max_iters=$half default_hooks.checkpoint.interval=$half || return 1
    train "$PRETRAIN_CFG" --amp --work-dir "$work" --resume --cfg-options "${PRETRAIN_OPTS[@]}" \
        train_cfg.max_iters=$ITERS default_hooks.checkpoint.interval=$half || return 1
    grep -q "resumed" "$work"/*/*.log || { echo 'the second run did not resume'; return 1; }
    [ "$(basename "$(last_checkpoint "$work")")" = "iter_$ITERS.pth" ]
}

finetune_and_test() {
    local work="$OUT/finetune" cfg="$ROOT/configs/cls/itpn-demo_fashion-mnist_finetune.py"
    local data=(train_dataloader.dataset.data_root="$DATA/fashion-mnist"
                val_dataloader.dataset.data_root="$DATA/fashion-mnist"
                test_dataloader.dataset.data_root="$DATA/fashion-mnist")
    rm -rf "$work"
    train "$cfg" --amp --work-dir "$work" --cfg-options "${data[@]}" \
        model.backbone.init_cfg.checkpoint="$(last_checkpoint "$OUT/pretrain")" \
        train_cfg.max_iters=$CLS_ITERS train_cfg.val_interval=$CLS_ITERS \
        default_hooks.checkpoint.interval=$CLS_ITERS || return 1
    test_metric accuracy/top1 "$cfg" "$(last_checkpoint "$work")" --work-dir "$work/test" \
        --cfg-options "${data[@]}"
}

TINY_COCO="$DATA/tiny_coco_instances/"
COCO_DATA=()
for split in train val test; do
    COCO_DATA+=("${split}_dataloader.dataset.data_root=$TINY_COCO")
done
COCO_DATA+=(val_evaluator.ann_file="${TINY_COCO}annotations/instances.json"
            test_evaluator.ann_file="${TINY_COCO}annotations/instances.json")

det_train_and_test() {
    local name="$1" cfg="$2" work="$OUT/$1"
    shift 2
    rm -rf "$work"
    train "$cfg" --amp --work-dir "$work" --cfg-options "${COCO_DATA[@]}" "$@" \
        train_cfg.max_epochs=$DET_EPOCHS train_cfg.val_interval=$DET_EPOCHS \
        default_hooks.checkpoint.interval=$DET_EPOCHS || return 1
    test_metric coco/segm_mAP "$cfg" "$(last_checkpoint "$work")" --work-dir "$work/test" \
        --cfg-options "${COCO_DATA[@]}" "$@"
}

# The COCO Cascade recipe on the tiny set: 'nano' backbone, 13 classes,
# evaluated at 256 px as the tiny Mask R-CNN is.
CASCADE_TINY=(model.backbone.arch=nano model.backbone.init_cfg=None model.neck.init_cfg=None
              "model.neck.in_channels=[32,64,128]" model.roi_head.mask_head.num_classes=13
              model.roi_head.bbox_head.0.num_classes=13 model.roi_head.bbox_head.1.num_classes=13
              model.roi_head.bbox_head.2.num_classes=13
              "val_dataloader.dataset.pipeline.1.scale=(256,256)"
              "test_dataloader.dataset.pipeline.1.scale=(256,256)")
for split in train val test; do
    CASCADE_TINY+=("${split}_dataloader.dataset.ann_file=annotations/instances.json"
                   "${split}_dataloader.dataset.data_prefix.img=images/"
                   "${split}_dataloader.dataset.metainfo.classes=[nucleus,bottle,chair,person,diningtable,mouse_traps,burts_bees_baby_wipes,laugh_out_loud_jokes,irish_spring_soap,measuring_spoons,fiskars_scissors,ice_cube_tray,hanes_socks]")
done

seg_train_and_test() {
    local work="$OUT/upernet" cfg="$ROOT/configs/seg/upernet_itpn_hivit-tiny-p16_1xb4-400it_tiny-real-seg-256x256.py"
    local data=()
    for split in train val test; do
        data+=("${split}_dataloader.dataset.data_root=$DATA/tiny_real_seg")
    done
    rm -rf "$work"
    train "$cfg" --amp --work-dir "$work" --cfg-options "${data[@]}" train_cfg.max_iters=$SEG_ITERS \
        train_cfg.val_interval=$SEG_ITERS default_hooks.checkpoint.interval=$SEG_ITERS || return 1
    test_metric mIoU "$cfg" "$(last_checkpoint "$work")" --work-dir "$work/test" --cfg-options "${data[@]}"
}

dist_train_nccl() {
    local work="$OUT/dist_train"
    rm -rf "$work"
    PORT=29517 "$ROOT/tools/dist_train.sh" "$PRETRAIN_CFG" 1 --amp --work-dir "$work" \
        --cfg-options "${PRETRAIN_OPTS[@]}" train_cfg.max_iters=20 default_hooks.checkpoint.interval=20 || return 1
    grep -q "'backend': 'nccl'\|backend.*nccl" "$work"/*/*.log || { echo 'the run did not use NCCL'; return 1; }
}

fsdp_pretrain() {
    local work="$OUT/fsdp"
    rm -rf "$work"
    # With momentum 0 every update copies the student into the teacher, so
    # the saved teacher equals the saved student exactly if the update ran
    # on every shard (it would hold its initial weights if it never ran).
    PORT=29518 "$ROOT/tools/dist_train.sh" "$ROOT/configs/pretrain/itpn-demo_fashion-mnist_fsdp.py" 1 \
        --work-dir "$work" --cfg-options "${PRETRAIN_OPTS[@]}" train_cfg.max_iters=20 \
        default_hooks.checkpoint.interval=20 custom_hooks.0.momentum=0.0 || return 1
    "$PYTHON" - "$(last_checkpoint "$work")" <<'EOF'
import sys

import torch

from mmitpn.compat import apply_compat_patches

apply_compat_patches()  # mmengine checkpoints load weights-only
state = torch.load(sys.argv[1], map_location='cpu')['state_dict']
teacher = {k[len('teacher.module.'):]: v for k, v in state.items()
           if k.startswith('teacher.module.')}
student = {k[len('backbone.'):]: v for k, v in state.items()
           if k.startswith('backbone.')}
assert teacher and teacher.keys() == student.keys(), 'no whole teacher saved'
gap = max((teacher[k].float() - student[k].float()).abs().max().item()
          for k in teacher)
print(f'{len(teacher)} teacher tensors, max |teacher - student| = {gap:.3g}')
assert gap == 0, 'the teacher missed updates'
EOF
}

# The speed rows of issue #21: bf16 autocast on every row, mmitpn's fast
# paths on (the compiled step on a GPU) and, beside them, the plain path.
BENCH="$ROOT/tools/analysis_tools/benchmark.py"
BENCH_ROWS=(--device "$DEVICE" --amp --amp-dtype bf16 --accel on --also-plain --rounds $ROUNDS --iters 2)
benchmark_train() {
    local batch
    for batch in $TRAIN_BATCHES; do
        rm -f "$OUT/benchmark_train_b$batch.json"
        "$PYTHON" "$BENCH" "$ROOT/configs/pretrain/itpn-pixel-mfm_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py" \
            --mode train --batch-size "$batch" "${BENCH_ROWS[@]}" \
            --compare "config:mmpretrain::itpn/itpn-pixel_hivit-base-p16_8xb512-amp-coslr-800e_in1k.py" \
            "config:$ROOT/configs/pretrain/itpn-pixel_hivit-base-p16_8xb512-amp-coslr-800e_in1k.py" \
            "config:mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py" \
            --json-out "$OUT/benchmark_train_b$batch.json" || return 1
    done
}

benchmark_infer() {
    rm -f "$OUT/benchmark_infer.json"
    "$PYTHON" "$BENCH" "$ROOT/configs/cls/itpn-pixel_hivit-base-p16_32xb32-coslr-100e_in1k.py" \
        --mode infer --batch-size "$INFER_BATCH" "${BENCH_ROWS[@]}" --compare timm:vit_base_patch16_224 \
        --json-out "$OUT/benchmark_infer.json"
}

# Issue #21's targets, read from the benchmark's rows: at each batch the
# EMA-MFM step with the fast paths at least 1.5x mmpretrain's iTPN-B pixel
# step, in no more peak memory; inference at least 0.95x timm's ViT-B.
speed_targets() {
    "$PYTHON" - "$OUT" "$DEVICE" $TRAIN_BATCHES <<'EOF'
import json
import sys

out, device, batches = sys.argv[1], sys.argv[2], sys.argv[3:]
missed = []


def rows(name):
    try:
        with open(f'{out}/{name}.json') as f:
            return json.load(f)['rows']
    except FileNotFoundError:
        print(f'MISSED {name}: not measured (its benchmark check failed or '
              'did not run)')
        missed.append(name)


def check(what, value, target, at_least=True):
    met = value >= target if at_least else value <= target
    print(f'{"met   " if met else "MISSED"} {what}: {value:.2f}x '
          f'({"at least" if at_least else "at most"} {target}x)')
    if not met:
        missed.append(what)


def mfu(row):
    return f'{100 * row["mfu"]:.1f} %' if 'mfu' in row else 'n/a'


for batch in batches:
    # rows: mmpretrain iTPN pixel, mmitpn pixel, MAE, EMA-MFM plain, fast
    measured = rows(f'benchmark_train_b{batch}')
    if measured is None:
        continue
    base, pixel, mae, plain, fast = measured
    check(f'b{batch} EMA-MFM step with the fast paths vs mmpretrain '
          'iTPN-B pixel step', fast['ratio'], 1.5)
    check(f'b{batch} its peak memory vs mmpretrain\'s',
          fast['peak_mib'] / base['peak_mib'], 1.0, at_least=False)
    print(f'       plain path {plain["ratio"]:.2f}x, MAE ViT-B '
          f'{mae["ratio"]:.2f}x, mmitpn pixel {pixel["ratio"]:.2f}x; MFU '
          f'fast {mfu(fast)}, plain {mfu(plain)}, mmpretrain {mfu(base)}')
measured = rows('benchmark_infer')
if measured is not None:
    timm, plain, fast = measured
    check('inference with the fast paths vs timm ViT-B', fast['ratio'], 0.95)
    print(f'       plain path {plain["ratio"]:.2f}x')
# The targets are a GPU's; a CPU rehearsal only shows the numbers.
sys.exit(1 if missed and device == 'cuda' else 0)
EOF
}

# The compiled fast path against the plain one on this GPU, CUDA graphs
# included: the CUDA tests of tests/test_accel/test_gpu_compile.py.
fast_path_parity() {
    "$PYTHON" -m pytest -q -p no:cacheprovider "$ROOT/tests/test_accel/test_gpu_compile.py" -k cuda | tee "$OUT/fast-path-parity.out"
    grep -qE '(^| )2 passed' "$OUT/fast-path-parity.out"
}

echo "mmitpn GPU check on $DEVICE: data $DATA, logs $OUT"
check pretrain-amp-resume pretrain_then_resume
check finetune-test finetune_and_test
check mask-rcnn-test det_train_and_test mask-rcnn \
    "$ROOT/configs/det/mask-rcnn_itpn-tiny-p16_overfit-60e_tiny-coco-instances.py"
check cascade-test det_train_and_test cascade \
    "$ROOT/configs/det/cascade-mask-rcnn_itpn-pixel_hivit-base-p16_ms-crop-3x_coco.py" "${CASCADE_TINY[@]}"
check upernet-test seg_train_and_test
if [ "$DEVICE" = cuda ]; then
    check dist-train-nccl dist_train_nccl
    check fsdp-pretrain fsdp_pretrain
else
    skip dist-train-nccl 'needs CUDA'
    skip fsdp-pretrain 'needs CUDA'
fi
if [ "$DEVICE" = cuda ]; then
    check fast-path-parity fast_path_parity
else
    skip fast-path-parity 'needs CUDA (make test runs its CPU half)'
fi
check benchmark-train benchmark_train
check benchmark-infer benchmark_infer
for name in benchmark-train benchmark-infer; do
    [ -f "$OUT/$name.log" ] && sed -n '/^train:\|^infer:/,/^ratios are/p' "$OUT/$name.log"
done
check speed-targets speed_targets
[ -f "$OUT/speed-targets.log" ] && cat "$OUT/speed-targets.log"
echo "total ${SECONDS}s"
exit $FAILED
