#!/usr/bin/env bash
# Here, before benchmarks/gpu/pipeline.sh runs on the GPU machine (carry [".gpu/ranks-torch"]): the MPI rank program with
# TorchSharp's managed part and its shim, self-contained. LibTorch's own libraries (500 MB) stay behind: that machine's
# PyTorch provides them (LibTorch 2.11 with CUDA; TorchSharp 0.107's shim resolves every symbol against it).
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu/ranks-torch
dotnet publish tests/ModelCompiler.Distributed.Ranks -c Release -p:GpuPublish=true -p:WithTorch=true -o .gpu/ranks-torch -nologo -v quiet
find .gpu/ranks-torch -name '*.so*' ! -name libLibTorchSharp.so -delete
rm -f .gpu/ranks-torch/*.pdb .gpu/ranks-torch/*.xml
du -sh .gpu/ranks-torch
