#!/usr/bin/env bash
# Publishes the kernel benchmark as one self-contained, trimmed file (~15 MB) into .gpu/bench, for a GPU machine without .NET.
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet publish benchmarks/ModelCompiler.Gpu.Benchmarks/ModelCompiler.Gpu.Benchmarks.csproj -c Release -p:GpuPublish=true -nologo -v quiet -o .gpu/bench
ls -la .gpu/bench
