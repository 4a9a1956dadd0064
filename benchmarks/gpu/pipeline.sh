#!/usr/bin/env bash
# On the two-GPU machine: TinySeek's pre-training step across 2 GPUs, one MPI rank per GPU, the pipeline's traffic on NCCL,
# against one process on the CPU and on one GPU. Publish first here: bash benchmarks/gpu/publish-ranks.sh
# TorchSharp's shim runs on that machine's PyTorch (LibTorch 2.11, CUDA 13): no LibTorch travels.
set -uo pipefail
export DOTNET_BUNDLE_EXTRACT_BASE_DIR=/tmp/dn NCCL_NVLS_ENABLE=0 TERM=dumb OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
LD_LIBRARY_PATH=$(python3 -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
NCCL_LIB=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib', 'libnccl.so.2'))")
export LD_LIBRARY_PATH NCCL_LIB
ranks=.gpu/ranks-torch/ModelCompiler.Distributed.Ranks
steps=${STEPS:-30}
# Each rank sees only its own GPU (as cuda:0).
printf '#!/bin/bash\nexport CUDA_VISIBLE_DEVICES=$OMPI_COMM_WORLD_LOCAL_RANK\nexec "$@"\n' > /tmp/bind.sh && chmod +x /tmp/bind.sh
run() { echo "== $1"; shift; timeout 150 "$@" 2>&1 | grep -avE "^\s*$|^\[" | tail -40 || echo "(exit $?)"; }
run "one process, CPU" mpirun -np 1 -x LD_LIBRARY_PATH $ranks single "$steps"
run "one process, one GPU" mpirun -np 1 -x LD_LIBRARY_PATH -x NCCL_LIB /tmp/bind.sh $ranks single "$steps" cuda
# The pipeline's micro-batches (4 of 4 rows) in one process: forward and backward per micro-batch for the simulator.
run "one process, one GPU, 4 micro-batches" mpirun -np 1 -x LD_LIBRARY_PATH -x NCCL_LIB /tmp/bind.sh $ranks single "$steps" cuda 4
for schedule in dualpipe 1f1b; do
    run "$schedule, 2 GPUs (NCCL)" mpirun -np 2 -x LD_LIBRARY_PATH -x NCCL_LIB -x NCCL_NVLS_ENABLE /tmp/bind.sh $ranks pretrain $schedule "$steps" 4 cuda
done
