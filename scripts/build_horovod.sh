#!/usr/bin/env bash
# Build Horovod 0.28.1 from its sdist against the installed PyTorch, cache the wheel, install it.
#
# Horovod 0.28.1 (the last release) does not build against PyTorch >= 2.1 as published:
# PyTorch's headers need C++17 while Horovod asks CMake for C++14. This script downloads the
# sdist, raises the C++ standard with sed (idempotent and verified), builds a wheel with Gloo
# (CPU default, or NCCL with --gpu) and installs it into the current Python with --no-deps.
#
# Wheels are cached in ${ORCH_CACHE:-$HOME/.cache/orch}/wheels/<key>/ where <key> names the
# Horovod version, the torch version, the Python version and the variant (cpu, or gpu with
# its CUDA compute capabilities, e.g. gpu-cc80-90); a cached wheel is reused without building.
set -euo pipefail

readonly HOROVOD_VERSION="0.28.1"
readonly DEFAULT_CUDA_CC_LIST="90"

usage() {
    cat <<'EOF'
Usage:
  build_horovod.sh [--gpu] [--cuda-cc-list LIST] [--python PYTHON] [--rebuild]
  build_horovod.sh patch DIR
  build_horovod.sh cache-key [--gpu] [--python PYTHON]
  build_horovod.sh --help

Builds Horovod 0.28.1 with PyTorch support from source, caches the wheel and installs it
into PYTHON (default: the `python` on PATH) with `pip install --no-deps`.

Options:
  --gpu               NCCL GPU operations (needs nvcc and the nvidia-nccl-cu* pip package);
                      the default is a CPU build with Gloo only.
  --cuda-cc-list L    CUDA compute capabilities for --gpu, comma-separated
                      (default: $HOROVOD_BUILD_CUDA_CC_LIST, else 90).
  --python PYTHON     the interpreter to build for and install into.
  --rebuild           ignore a cached wheel and build again.

Subcommands:
  patch DIR           apply the C++17 patch to an unpacked Horovod sdist in DIR (idempotent).
  cache-key           print the wheel cache directory for this Python/torch/variant.

Environment:
  ORCH_CACHE          cache root (default: $HOME/.cache/orch); wheels live in $ORCH_CACHE/wheels.
  HOROVOD_BUILD_JOBS  parallel compile jobs (default: number of CPUs).
EOF
}

log() { printf 'build_horovod: %s\n' "$*" >&2; }
die() { printf 'build_horovod: error: %s\n' "$*" >&2; exit 1; }

# Replace $2 by $3 in file $1 unless $3 is already there; fail if neither is present.
replace_once() {
    local file="$1" old="$2" new="$3"
    [[ -f "$file" ]] || die "patch: $file not found (is this a Horovod ${HOROVOD_VERSION} sdist?)"
    if grep -qF -- "$new" "$file" && ! grep -qF -- "$old" "$file"; then
        return 0
    fi
    grep -qF -- "$old" "$file" || die "patch: expected '$old' in $file; the sdist layout changed"
    local old_re new_re
    old_re=$(printf '%s' "$old" | sed 's/[]\/$*.^[]/\\&/g')
    new_re=$(printf '%s' "$new" | sed 's/[\/&]/\\&/g')
    sed -i "s/${old_re}/${new_re}/g" "$file"
    grep -qF -- "$old" "$file" && die "patch: '$old' still present in $file after sed"
    grep -qF -- "$new" "$file" || die "patch: '$new' missing from $file after sed"
    return 0
}

# Raise every C++ standard Horovod requests to C++17 (host code, the PyTorch extension and
# the CUDA flags); the CUDA edits are inert in a CPU build.
patch_sdist() {
    local dir="$1"
    [[ -d "$dir" ]] || die "patch: $dir is not a directory"
    replace_once "$dir/CMakeLists.txt" "set(CMAKE_CXX_STANDARD 14)" "set(CMAKE_CXX_STANDARD 17)"
    replace_once "$dir/horovod/torch/CMakeLists.txt" \
        "set(CMAKE_CXX_STANDARD 14)" "set(CMAKE_CXX_STANDARD 17)"
    replace_once "$dir/CMakeLists.txt" \
        'CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS} -std=c++11"' \
        'CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS} -std=c++17"'
    replace_once "$dir/horovod/common/ops/cuda/CMakeLists.txt" \
        "set(CMAKE_CUDA_STANDARD 11)" "set(CMAKE_CUDA_STANDARD 17)"
    log "patched $dir for C++17"
}

python_tag() {
    "$PYTHON" -c 'import sys; print(f"py{sys.version_info[0]}.{sys.version_info[1]}")'
}

torch_version() {
    "$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null \
        || die "PyTorch is not importable by $PYTHON; install torch first"
}

cache_dir_for() {
    local variant="$1"
    local root="${ORCH_CACHE:-$HOME/.cache/orch}"
    printf '%s/wheels/horovod-%s_torch-%s_%s_%s\n' \
        "$root" "$HOROVOD_VERSION" "$(torch_version)" "$(python_tag)" "$variant"
}

# Print the directory of the nvidia-nccl-cu* pip package and make libnccl.so resolvable.
nccl_package_dir() {
    local dir
    dir=$("$PYTHON" -c 'import importlib.util as u
spec = u.find_spec("nvidia.nccl")
print(list(spec.submodule_search_locations)[0] if spec else "")') || true
    [[ -n "$dir" && -f "$dir/include/nccl.h" ]] \
        || die "--gpu needs the nvidia-nccl-cu12 pip package (nccl.h not found)"
    [[ -f "$dir/lib/libnccl.so.2" ]] || die "libnccl.so.2 missing under $dir/lib"
    [[ -e "$dir/lib/libnccl.so" ]] || ln -s libnccl.so.2 "$dir/lib/libnccl.so"
    printf '%s\n' "$dir"
}

# Export the HOROVOD_* build switches for the variant.
export_build_env() {
    local variant="$1" cc_list="$2"
    export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1
    export HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1
    export CMAKE_POLICY_VERSION_MINIMUM=3.5
    export MAKEFLAGS="-j${HOROVOD_BUILD_JOBS:-$(nproc)}"
    if [[ "$variant" == gpu ]]; then
        local nccl_dir
        nccl_dir=$(nccl_package_dir)
        export HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_NCCL_LINK=SHARED
        export HOROVOD_NCCL_INCLUDE="$nccl_dir/include" HOROVOD_NCCL_LIB="$nccl_dir/lib"
        export HOROVOD_BUILD_CUDA_CC_LIST="$cc_list"
        export CXXFLAGS="${CXXFLAGS:-} -include cstdint -include string -include stdexcept"
    else
        unset HOROVOD_GPU_OPERATIONS HOROVOD_GPU || true
        export HOROVOD_CPU_OPERATIONS=GLOO
    fi
}

build_wheel() {
    local variant="$1" cc_list="$2" out_dir="$3"
    BUILD_WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/horovod-build.XXXXXX")
    trap 'rm -rf "$BUILD_WORK_DIR"' EXIT
    local work="$BUILD_WORK_DIR"
    log "downloading the horovod==${HOROVOD_VERSION} sdist"
    "$PYTHON" -m pip download --quiet "horovod==${HOROVOD_VERSION}" --no-deps \
        --no-binary :all: -d "$work"
    tar -xzf "$work/horovod-${HOROVOD_VERSION}.tar.gz" -C "$work"
    patch_sdist "$work/horovod-${HOROVOD_VERSION}"
    "$PYTHON" -c 'import wheel' 2>/dev/null || "$PYTHON" -m pip install --quiet wheel
    export_build_env "$variant" "$cc_list"
    log "building the $variant wheel with cmake $(cmake --version | head -n1 | awk '{print $3}')" \
        "and ${MAKEFLAGS}; this takes several minutes"
    "$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$work/dist" \
        "$work/horovod-${HOROVOD_VERSION}"
    mkdir -p "$out_dir"
    local built
    built=$(find "$work/dist" -name 'horovod-*.whl' | head -n1)
    [[ -n "$built" ]] || die "pip wheel produced no wheel"
    cp "$built" "$out_dir/.$(basename "$built").partial"
    mv "$out_dir/.$(basename "$built").partial" "$out_dir/$(basename "$built")"
    log "cached $(basename "$built") in $out_dir"
}

install_wheel() {
    local wheel="$1"
    log "installing $wheel"
    "$PYTHON" -m pip install --quiet --no-deps --force-reinstall "$wheel"
    "$PYTHON" -c 'import cloudpickle, psutil, yaml, packaging' 2>/dev/null \
        || "$PYTHON" -m pip install --quiet cloudpickle psutil pyyaml packaging
    "$PYTHON" -c 'import horovod.torch' \
        || die "horovod.torch does not import after installing $wheel"
    log "horovod ${HOROVOD_VERSION} installed into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
}

main() {
    PYTHON="python"
    local variant="cpu" cc_list="${HOROVOD_BUILD_CUDA_CC_LIST:-$DEFAULT_CUDA_CC_LIST}"
    local rebuild=0 command="build"
    case "${1:-}" in
        patch) [[ $# -eq 2 ]] || die "usage: build_horovod.sh patch DIR"; patch_sdist "$2"; return ;;
        cache-key) command="cache-key"; shift ;;
    esac
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -h|--help) usage; return ;;
            --gpu) variant="gpu" ;;
            --cuda-cc-list) [[ $# -ge 2 ]] || die "--cuda-cc-list needs a value"; cc_list="$2"; shift ;;
            --python) [[ $# -ge 2 ]] || die "--python needs a value"; PYTHON="$2"; shift ;;
            --rebuild) rebuild=1 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
        shift
    done
    [[ "$cc_list" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--cuda-cc-list must look like 80,90, got '$cc_list'"
    command -v "$PYTHON" >/dev/null || die "python interpreter not found: $PYTHON"
    # horovodrun, a pip-installed cmake and friends live next to the interpreter.
    PATH="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    local cache_dir variant_key="$variant"
    [[ "$variant" == gpu ]] && variant_key="gpu-cc${cc_list//,/-}"
    cache_dir=$(cache_dir_for "$variant_key")
    if [[ "$command" == cache-key ]]; then
        printf '%s\n' "$cache_dir"
        return
    fi
    local wheel=""
    if [[ $rebuild -eq 0 && -d "$cache_dir" ]]; then
        wheel=$(find "$cache_dir" -maxdepth 1 -name 'horovod-*.whl' | head -n1)
    fi
    if [[ -n "$wheel" ]]; then
        log "reusing cached wheel $wheel"
    else
        command -v cmake >/dev/null || "$PYTHON" -m pip install --quiet cmake
        build_wheel "$variant" "$cc_list" "$cache_dir"
        wheel=$(find "$cache_dir" -maxdepth 1 -name 'horovod-*.whl' | head -n1)
    fi
    install_wheel "$wheel"
}

main "$@"
