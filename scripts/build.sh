#!/usr/bin/env bash
# Configures and builds worker-orcd (Release) into BUILD_DIR (default: build). -j2 by default: the
# development machines and CI have 2 cores. Override with JOBS=N.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
jobs=${JOBS:-2}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"
