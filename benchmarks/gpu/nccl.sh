#!/usr/bin/env bash
# On the GPU machine: the NCCL binding on one rank, bootstrapped over MPI (Open MPI is installed there). Publish first here:
#   dotnet publish tests/ModelCompiler.Distributed.Ranks -c Release -p:GpuPublish=true -o .gpu/ranks
set -euo pipefail
export DOTNET_BUNDLE_EXTRACT_BASE_DIR=/tmp/dn NCCL_NVLS_ENABLE=0 TERM=dumb
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
NCCL_LIB=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib', 'libnccl.so.2'))")
export NCCL_LIB
timeout 300 mpirun -np 1 .gpu/ranks/ModelCompiler.Distributed.Ranks nccl
