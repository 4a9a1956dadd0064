#!/usr/bin/env bash
# ModelCompiler's two commands:
#   ./build.sh demo   the main job: build the samples and print their generated plans
#   ./build.sh test   build everything and run every test
#   ./build.sh pack   the NuGet packages, the modelc tool and the dotnet new template, into artifacts/feed
# Before building, it installs what a fresh Debian 12 machine lacks, only when it is missing (idempotent).
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The shared-library cache, read whole: piping `ldconfig -p` into a reader that stops early (grep -q, awk's exit) kills it
# with SIGPIPE once the cache outgrows a pipe buffer, and pipefail turns that into a failed check or an exit.
has_library() { grep -q "$1" <<<"$(ldconfig -p)"; }

ensure_dotnet() {
    if ! command -v dotnet >/dev/null 2>&1; then
        echo "error: the .NET SDK 10 is required (https://dot.net); 'dotnet' is not on PATH" >&2
        exit 1
    fi
}

# TorchSharp-cpu 0.107.0's native shim needs GLIBCXX_3.4.32 (libstdc++ of GCC 13+); Debian 12 ships GCC 12's.
# Debian 13's libstdc++6, from a low-pinned trixie source, provides it; every other package stays on Debian 12.
ensure_libstdcxx() {
    local lib
    lib=$(awk '/libstdc\+\+\.so\.6 /{print $NF; exit}' <<<"$(ldconfig -p)")
    if [ -n "$lib" ] && grep -aq GLIBCXX_3.4.32 "$lib"; then return; fi
    if ! [ -f /etc/debian_version ]; then
        echo "warning: libstdc++ lacks GLIBCXX_3.4.32 and this is not Debian; install GCC 13+'s libstdc++ for TorchSharp" >&2
        return
    fi
    log "Installing Debian 13's libstdc++6 (TorchSharp needs GLIBCXX_3.4.32)"
    local uri
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    uri=${uri:-http://deb.debian.org/debian}
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" | as_root tee /etc/apt/sources.list.d/trixie.list >/dev/null
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' | as_root tee /etc/apt/preferences.d/trixie >/dev/null
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq -t trixie libstdc++6 >/dev/null
}

# The generated GPU kernels are tested on the CPU through OpenCL: PoCL, plus the unversioned libOpenCL.so that ILGPU loads.
# Where libc came from Debian 13 (see above), PoCL must come from there too.
ensure_opencl() {
    if [ -e /etc/OpenCL/vendors/pocl.icd ] && has_library 'libOpenCL\.so '; then return; fi
    if ! [ -f /etc/debian_version ]; then
        echo "warning: no OpenCL ICD found; install PoCL (pocl-opencl-icd) for the kernel tests" >&2
        return
    fi
    log "Installing PoCL (OpenCL on the CPU) for the kernel tests"
    local release=()
    if dpkg-query -W -f='${Version}' libc6 2>/dev/null | grep -q 'deb13'; then release=(-t trixie); fi
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${release[@]}" pocl-opencl-icd ocl-icd-opencl-dev >/dev/null
}

# The distributed tests launch ranks with mpirun: Open MPI's runtime (the binding loads libmpi.so.40; no -dev package needed).
ensure_mpi() {
    if command -v mpirun >/dev/null 2>&1 && has_library 'libmpi\.so\.40'; then return; fi
    if ! [ -f /etc/debian_version ]; then
        echo "warning: no Open MPI found; install openmpi-bin for the distributed tests" >&2
        return
    fi
    log "Installing Open MPI for the distributed tests"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi3 >/dev/null
}

prepare() {
    ensure_dotnet
    ensure_libstdcxx
    ensure_opencl
    ensure_mpi
}

demo() {
    prepare
    log "Building the samples (the generator runs as part of the build)"
    dotnet build samples/DeepSeekV3/DeepSeekV3.csproj -c Release -nologo -v quiet
    dotnet build samples/TinySeek/TinySeek.csproj -c Release -nologo -v quiet
    for sample in DeepSeekV3 TinySeek; do
        log "samples/$sample: the plan"
        dotnet run --project "samples/$sample/$sample.csproj" -c Release --no-build -- plan
        echo "generated code: samples/$sample/obj/Generated/ModelCompiler.Generators/ModelCompiler.Generators.ModelCompilerGenerator/"
    done
    local run="runs/demo-$(date +%Y%m%d-%H%M%S)"
    log "TinySeek: pre-training on noisy arithmetic (MTP, auxiliary-loss-free balancing) into $run"
    dotnet run --project samples/TinySeek/TinySeek.csproj -c Release --no-build -- pretrain --out "$run/pretrain"
    log "TinySeek: GRPO with verifiable rewards from the pre-trained model into $run/grpo"
    dotnet run --project samples/TinySeek/TinySeek.csproj -c Release --no-build -- grpo --from "$run/pretrain" --out "$run/grpo"
    echo "reports: $run/pretrain/report.md, $run/grpo/report.md"
}

test() {
    prepare
    log "Building Compiler.sln"
    dotnet build Compiler.sln -c Release -nologo -v quiet
    log "Running the tests"
    local results status=0
    results=$(mktemp -d)
    dotnet test Compiler.sln -c Release --no-build -nologo --logger "trx" --results-directory "$results" || status=$?
    # One closing line for any reader: N passed, N failed.
    local passed failed
    passed=$(cat "$results"/*.trx 2>/dev/null | grep -o 'passed="[0-9]*"' | grep -o '[0-9]*' | awk '{s+=$1} END {print s+0}')
    failed=$(cat "$results"/*.trx 2>/dev/null | grep -o 'failed="[0-9]*"' | grep -o '[0-9]*' | awk '{s+=$1} END {print s+0}')
    rm -rf "$results"
    echo "${passed:-0} passed, ${failed:-0} failed"
    return "$status"
}

# Packages.slnf lists what is packed. The build is deterministic (ContinuousIntegrationBuild maps source paths to the
# repository root, the commit is recorded) and goes to its own folder, so that it never disturbs an in-place build or a
# test run. The version is the release version with -dev.<commits> appended unless --version says otherwise: every
# commit packs under a new version, so a consumer never restores a stale copy of the same version from the NuGet cache.
pack() {
    local out=artifacts/feed version="" build=artifacts/pack
    while [ $# -gt 0 ]; do
        case "$1" in
            --out) out=$2; shift 2 ;;
            --version) version=$2; shift 2 ;;
            --build) build=$2; shift 2 ;;
            *) echo "usage: ./build.sh pack [--out DIR] [--version X.Y.Z[-suffix]] [--build DIR]" >&2; exit 2 ;;
        esac
    done
    ensure_dotnet
    local prefix commit stamp
    prefix=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props)
    commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    stamp=$(git log -1 --format=%ct 2>/dev/null || echo 315532800)   # the commit's time stamps every zip entry
    version=${version:-$prefix-dev.$(git rev-list --count HEAD 2>/dev/null || echo 0)}
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    log "Packing ModelCompiler $version (commit $commit) into $out"
    dotnet pack Packages.slnf -c Release -nologo -v quiet --artifacts-path "$build" -o "$out" \
        -p:Version="$version" -p:RepositoryCommit="$commit" -p:ContinuousIntegrationBuild=true -p:DeterministicTimestamp="$stamp"
    ls -1 "$out" | grep -F ".$version." | sed 's/^/    /'
}

case "${1:-}" in
    demo) demo ;;
    test) test ;;
    pack) shift; pack "$@" ;;
    *) echo "usage: ./build.sh demo|test|pack" >&2; exit 2 ;;
esac
