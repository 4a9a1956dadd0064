#!/usr/bin/env bash
# On the GPU machine: assemble the checked-in PTX snapshots with the ptxas that ships with Triton and print each kernel's
# registers, spills and instruction counts (the resource report METHOD.md asks for), without launching anything.
set -euo pipefail
ptxas=$(python3 -c "import triton, os; print(os.path.join(os.path.dirname(triton.__file__), 'backends/nvidia/bin/ptxas'))")
tools=$(dirname "$ptxas")
dir=tests/ModelCompiler.Gpu.Tests/Snapshots/PtxSnapshotTests/Cuda_kernels_compile_to_the_snapshot_PTX_model=DeepSeekV3
for file in "$dir"/*.verified.ptx; do
    name=$(basename "$file" .verified.ptx)
    # Triton's ptxas (CUDA 12.8) reads PTX ISA up to 8.7; nothing in these kernels needs 8.8.
    sed 's/^\.version 8\.8/.version 8.7/' "$file" > "/tmp/$name.ptx"
    report=$("$ptxas" -arch=sm_90 -v "/tmp/$name.ptx" -o "/tmp/$name.cubin" 2>&1 | grep -oE 'Used [0-9]+ registers|[0-9]+ bytes spill stores' | tr '\n' ' ')
    sass=$("$tools/cuobjdump" -sass "/tmp/$name.cubin" | grep -cE '^\s+/\*[0-9a-f]{4}\*/')
    mma=$("$tools/cuobjdump" -sass "/tmp/$name.cubin" | grep -c 'HMMA' || true)
    echo "$name: $report; $sass SASS instructions, $mma HMMA"
done
# With a kernel name as argument: the opcode histogram of its SASS (where the instructions go).
if [ $# -gt 0 ]; then
    "$tools/cuobjdump" -sass "/tmp/$1.cubin" | grep -oE '^\s+/\*[0-9a-f]{4}\*/\s+[A-Z0-9_.]+' | awk '{print $2}' | sed 's/\..*//' | sort | uniq -c | sort -rn | head -25
fi
