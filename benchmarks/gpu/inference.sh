#!/usr/bin/env bash
# On the GPU machine, from the repository root, after benchmarks/gpu/publish-inference.sh here: the engine's logits on the
# reference checkpoints and on a transformers-made V2-Lite checkpoint (4 layers), then transformers' and the engine's
# generation speed at V2-Lite's shapes with random bf16 weights. Everything goes to $OUT (default /tmp/mc-inference).
set -uo pipefail
out=${OUT:-/tmp/mc-inference}
mkdir -p "$out"
export DOTNET_BUNDLE_EXTRACT_BASE_DIR=/tmp/dn PYTHONUNBUFFERED=1
cublas=$(python3 -c "import nvidia, os, glob; print(next(iter(glob.glob(os.path.join(os.path.dirname(nvidia.__path__[0] + '/x'), '**', 'libcublas.so.13*'), recursive=True)), ''))" 2>/dev/null || true)
if [ -n "$cublas" ]; then export LD_LIBRARY_PATH="$(dirname "$cublas"):${LD_LIBRARY_PATH:-}"; fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader | tee "$out/gpu.txt"
config=tests/fixtures/configs/deepseek-v2-lite.json
python3 benchmarks/gpu/hf_deepseek.py checkpoint "$config" /tmp/v2lite-4 --layers 4 2>&1 | tee "$out/hf-checkpoint.txt"
.gpu/inference/ModelCompiler.Inference.Benchmarks verify tests/fixtures/tiny-v3 tests/fixtures/tiny-v3-fp8 /tmp/v2lite-4 2>&1 | tee "$out/verify.txt"
python3 benchmarks/gpu/hf_deepseek.py bench "$config" --batches "${HF_BATCHES:-1,32}" 2>&1 | tee "$out/hf-bench.txt"
.gpu/inference/ModelCompiler.Inference.Benchmarks bench "$config" --batches "${BATCHES:-1,8,32,64}" 2>&1 | tee "$out/bench.txt"
