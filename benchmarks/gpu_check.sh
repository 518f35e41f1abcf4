#!/usr/bin/env bash
# GPU acceptance check, at most 8 minutes on one GPU:
#   1. the GPU-marked tests (none may skip on a GPU machine);
#   2. training throughput, ours vs transformers' Mask2Former, Swin-T at 512 px, fp32 and bf16 (images/s,
#      peak memory, ratios from the same run);
#   3. a tiny sweep on the GPU whose promoted checkpoint is exported to ONNX, built into a TensorRT engine
#      (best/deploy_gen_trt_engine_spec.yaml) and evaluated by the deploy evaluate action
#      (best/deploy_evaluate_tensorrt_spec.yaml); its metric must match the PyTorch evaluation promotion ran.
# Then benchmarks/gpu_check_report.py checks every output, prints one table and writes gpu_check.json.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--out DIR]
#
# --dry-run runs every part that a CPU can on the CPU, in its smallest form (GPU tests only collected,
# throughput --quick, the deploy evaluation with ONNX Runtime instead of TensorRT), so the script itself is
# checked where no GPU exists (tests/cluster/test_gpu_check_script.py checks the parse and the report). Exit status: 0 when every check
# passed, 1 otherwise; the report says which failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY_RUN=0
OUT="$ROOT/benchmarks/results/gpu_check"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run] [--out DIR]" >&2; exit 2 ;;
  esac
done
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=$(command -v python3)
BIN=$(dirname "$PY")
export PATH="$BIN:$PATH"
rm -rf "$OUT"
mkdir -p "$OUT"
LIMIT_S=480
START=$SECONDS
declare -A STEP_S

step() {  # step NAME COMMAND...: run it, log to $OUT/NAME.log, record its time and status
  local name=$1; shift
  local begin=$SECONDS status=0
  echo "== $name: $*"
  "$@" >"$OUT/$name.log" 2>&1 || status=$?
  STEP_S[$name]=$((SECONDS - begin))
  echo "$name $status ${STEP_S[$name]}" >>"$OUT/steps.txt"
  if [ "$status" -ne 0 ]; then echo "   $name failed ($status); see $OUT/$name.log"; tail -20 "$OUT/$name.log"; fi
}

# 0. The machine.
if [ "$DRY_RUN" = 0 ]; then
  step gpu_info nvidia-smi
  step cuda "$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.cuda.get_device_name(0), torch.version.cuda)"
fi

# 1. GPU-marked tests.
if [ "$DRY_RUN" = 0 ]; then
  step gpu_tests "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" tests
else
  step gpu_tests "$PY" -m pytest -m gpu -q --collect-only -p no:cacheprovider tests
fi

# 2. Training throughput: Swin-T (the train template's model) at 512 px, fp32 and bf16.
if [ "$DRY_RUN" = 0 ]; then
  step throughput "$PY" benchmarks/train_throughput.py --device cuda --require-cuda --resolution 512 --batch-size 2 \
    --steps 10 --warmup 3 --precision fp32 --precision bf16 --out "$OUT/train_throughput.json"
else
  step throughput "$PY" benchmarks/train_throughput.py --quick --device cpu --threads 1 --steps 1 --warmup 0 \
    --precision fp32 --precision bf16 --out "$OUT/train_throughput.json"
fi

# 3. Sweep -> promoted checkpoint -> ONNX -> TensorRT engine -> deploy evaluation.
DATA="$OUT/data"
step data mask2former dataset synth --format coco_panoptic --out "$DATA" --num-images 6 --split-val 4 --size 64 --seed 0
if [ "$DRY_RUN" = 0 ]; then TRIALS=2; EPOCHS=2; GPUS=1; else TRIALS=1; EPOCHS=1; GPUS=0; fi
cat >"$OUT/sweep.yaml" <<EOF
name: gpu_check
skill_dir: $ROOT
base_spec: $ROOT/configs/quickstart_spec.yaml
datasets: {train: $DATA/train, eval: $DATA/val}
workspace: $OUT/ws
backend: optuna
algorithm: {name: random, max_trials: $TRIALS, max_epochs: $EPOCHS}
resources: {cpus_per_trial: 1, gpus_per_trial: $GPUS, max_concurrent: 1}
search_space: {parameters: [train.optim.lr]}
spec_overrides: {export.input_width: 64, export.input_height: 64}
trial: {timeout_s: 300, stop_grace_s: 60}
seed: 0
EOF
BEST="$OUT/ws/gpu_check/best"
step sweep hpo run "$OUT/sweep.yaml" --yes --no-live
step export mask2former export -e "$BEST/export_spec.yaml"
if [ "$DRY_RUN" = 0 ]; then
  step trt_engine mask2former gen_trt_engine -e "$BEST/deploy_gen_trt_engine_spec.yaml"
  step deploy_evaluate mask2former evaluate -e "$BEST/deploy_evaluate_tensorrt_spec.yaml"
else
  step deploy_evaluate mask2former evaluate -e "$BEST/deploy_evaluate_onnxruntime_spec.yaml"
fi

TOTAL=$((SECONDS - START))
echo "total $TOTAL" >>"$OUT/steps.txt"
exec "$PY" benchmarks/gpu_check_report.py --out "$OUT" --limit-s "$LIMIT_S" $([ "$DRY_RUN" = 1 ] && echo --dry-run)
