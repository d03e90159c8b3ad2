#!/bin/bash
# Issue 23's GPU checks (item 4) in one run on a CUDA machine whose Python already has torch, lightning and timm:
# imgclf train's throughput for model_s at 32x32 RGB, then `fast` at --time-limit 30s on Fashion-MNIST, seeds 0
# and 1. Results, history.csv and model.json of each run go to $OUT/res.tgz (packed after each step, so a step cut
# short keeps the ones before it), the log to $OUT/log.txt.
#
# Inputs it reads from the repository root (both folders git-ignored):
#   .whl/       wheels of what that Python may lack (pydantic, pydantic_core for its Python, annotated-types,
#               typing-inspection, typing_extensions, filelock), installed into /tmp/site; none needed where
#               `pip install -e .` works
#   .devdata/fm.tgz   the Fashion-MNIST tree benchmarks.common writes (tar czf .devdata/fm.tgz -C benchmarks/work
#               fashion-mnist-full): train/ and test/ of 28x28 PNGs, 34 MB
#
# fast_recipe names its result files by the host's CPU class (recipe_fast_30s_<cpu>_seed<S>.json): copied into
# benchmarks/results they become gpu_recipe_fast_30s_seed<S>.json, which docs/results.md's GPU section reads.
#
# On one H200 with a 16-vCPU Xeon host (2026-12-04) a 30-second run took 52-91 s of wall time (imports, the decode
# cache's first build, probe, training, evaluation): the step timeouts below allow for that.
set -u
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
exec > >(tee "$OUT/log.txt") 2>&1
T0=$(date +%s)
step() { echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD
W=/tmp/imgclf-gpu; R=$W/results; mkdir -p "$W" "$R"
tar xzf .devdata/fm.tgz -C "$W" || exit 1
pack() {
  (cd "$W" && find runs -maxdepth 2 \( -name history.csv -o -name model.json -o -name metrics.json \
     -o -name config.yaml -o -name '*.log' \) -print0 | tar czf "$OUT/res.tgz" --null -T - -C "$R" .) 2>/dev/null
}
step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
lscpu | grep -E "Model name|^CPU\(s\)"
python3 -c "import torch, lightning; print(torch.__version__, torch.version.cuda, lightning.__version__)"
step throughput
timeout 120 python3 -m benchmarks.gpu_throughput --work "$W" --results "$R" --data "$W/fashion-mnist-full" \
  --cases model_s:512:32,model_s:2048:bf16-mixed
pack
for seed in 0 1; do
  step "fast 30s seed $seed"
  timeout 150 python3 -m benchmarks.fast_recipe --time-limit 30s --seeds "$seed" --recipe fast --work "$W" \
    --results "$R"
  pack
done
step done
