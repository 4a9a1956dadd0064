#!/usr/bin/env bash
# Publishes the inference benchmark as one self-contained, trimmed file into .gpu/inference, for a GPU machine without .NET.
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet publish benchmarks/ModelCompiler.Inference.Benchmarks/ModelCompiler.Inference.Benchmarks.csproj -c Release -p:GpuPublish=true -nologo -v quiet -o .gpu/inference
ls -la .gpu/inference
