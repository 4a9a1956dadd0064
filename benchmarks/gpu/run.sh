#!/usr/bin/env bash
# On the GPU machine, from the repository root, after benchmarks/gpu/publish.sh here: PyTorch's eager and torch.compile
# times, then ours on the same operations and shapes, in one table (also written to $OUT/table.md when OUT is set).
set -euo pipefail
out=${OUT:-/tmp/mc-bench}
mkdir -p "$out"
export DOTNET_BUNDLE_EXTRACT_BASE_DIR=/tmp/dn
# cuBLAS 13 comes with PyTorch's CUDA wheels; ILGPU finds libcuda itself.
cublas=$(python3 -c "import nvidia, os, glob; print(next(iter(glob.glob(os.path.join(os.path.dirname(nvidia.__path__[0] + '/x'), '**', 'libcublas.so.13*'), recursive=True)), ''))" 2>/dev/null || true)
if [ -n "$cublas" ]; then export LD_LIBRARY_PATH="$(dirname "$cublas"):${LD_LIBRARY_PATH:-}"; fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader | tee "$out/gpu.txt"
python3 benchmarks/gpu/torch_ops.py > "$out/torch.json"
.gpu/bench/ModelCompiler.Gpu.Benchmarks --torch "$out/torch.json" | tee "$out/table.md"
