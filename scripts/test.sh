#!/usr/bin/env bash
# The test command: set-up, build, then every CTest test (unit, oracle, gpu, slow, fuzz). GPU tests report
# SKIPPED without a usable GPU (WORKER_ORCD_REQUIRE_GPU=1 turns that into a failure).
# usage: scripts/test.sh [ctest args...]      e.g. scripts/test.sh -L unit
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
phase_start=$(date +%s)
phase() {
  local now
  now=$(date +%s)
  echo "=== phase '$1' took $((now - phase_start)) s"
  phase_start=$now
}
"$root/scripts/setup.sh"
phase setup
"$root/scripts/build.sh" "$build"
phase build
cd "$build"
set +e
ctest --output-on-failure --timeout 900 -j "${CTEST_JOBS:-2}" "$@"
rc=$?
set -e
phase tests
exit $rc
