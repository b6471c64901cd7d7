#!/usr/bin/env bash
# Installs everything worker-orcd needs to build and test on Debian 12, idempotently:
#   Debian packages (compilers, CAF, ZeroMQ, msgpack, spdlog, Catch2, ICU, clang for the fuzzer,
#   python3-zmq/msgpack for the example client, Node.js >= 20 for the test oracle) and the pinned npm
#   packages of the oracle (tests/oracle/package-lock.json).
# CUDA 13 is not a Debian package: nvcc is used when present at /usr/local/cuda, else the CUDA backend is
# left out of the build (the CPU engine still builds and runs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  build-essential cmake ninja-build pkg-config git xz-utils ca-certificates
  libcaf-dev libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libboost-dev libspdlog-dev libfmt-dev catch2
  nlohmann-json3-dev libicu-dev
  clang libclang-rt-14-dev
  python3 python3-zmq python3-msgpack
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
node_major=0
if command -v node >/dev/null 2>&1; then node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0); fi
if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then missing+=(nodejs); fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo_cmd apt-get update -qq; then
    echo "setup: ERROR: apt-get update failed (is a Debian mirror reachable?)" >&2
    exit 1
  fi
  if ! $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    echo "setup: ERROR: could not install: ${missing[*]}" >&2
    exit 1
  fi
else
  echo "setup: all Debian packages present"
fi

if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: ERROR: Node.js >= 20 is required by the test oracle (node-llama-cpp 3.21.1); the apt" \
       "sources of this machine provide $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi

# The oracle's npm packages, pinned by package-lock.json. --omit=optional: node-llama-cpp would
# otherwise pull ~700 MB of prebuilt binaries for other platforms; the linux-x64 CPU build is a
# direct dependency instead.
oracle="$root/tests/oracle"
stamp="$oracle/node_modules/.worker-orcd-lock"
if [ -f "$stamp" ] && cmp -s "$stamp" "$oracle/package-lock.json"; then
  echo "setup: oracle npm packages present"
else
  echo "setup: installing oracle npm packages (npm ci)"
  if ! (cd "$oracle" && npm ci --omit=optional --no-audit --no-fund --loglevel=error); then
    echo "setup: ERROR: npm ci failed in tests/oracle (is the npm registry reachable?)" >&2
    exit 1
  fi
  cp "$oracle/package-lock.json" "$stamp"
fi

if [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: CUDA found: $(/usr/local/cuda/bin/nvcc --version | tail -n 1)"
else
  echo "setup: no nvcc at /usr/local/cuda: the CUDA backend will be left out of the build"
fi
echo "setup: done"
