#!/usr/bin/env bash
# Makes a relocatable bundle of the worker for GPU hosts: BUILD_DIR's `worker-orcd` and GPU test
# executables in OUT/bin, and every shared library they need (the ldd closure) in OUT/lib, except the
# ones every target host has: glibc, libstdc++/libgcc and the CUDA libraries (driver, cudart, cuBLAS),
# which must come from the host's own CUDA installation. Run on the host with
#   LD_LIBRARY_PATH=OUT/lib OUT/bin/worker-orcd ...
# (worker-orcd also carries an $ORIGIN/../lib RPATH).
#
# usage: scripts/bundle.sh BUILD_DIR OUT_DIR [--tar FILE.tar.xz]
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 BUILD_DIR OUT_DIR [--tar FILE.tar.xz]" >&2
  exit 2
fi
build=$1
out=$2
tarball=""
if [[ $# -ge 4 && $3 == --tar ]]; then tarball=$(realpath -m "$4"); fi

rm -rf "$out/bin" "$out/lib"  # nothing left over from an earlier bundle (e.g. a removed test)
mkdir -p "$out/bin" "$out/lib"

bins=()
[[ -x $build/tools/worker-orcd ]] && bins+=("$build/tools/worker-orcd")
for t in "$build"/tests/*/gpu_*_test; do  # GPU tests of every area (gpu/, actors/, ...)
  [[ -x $t ]] && bins+=("$t")
done
if [[ ${#bins[@]} -eq 0 ]]; then
  echo "bundle.sh: nothing to bundle in $build (build worker-orcd and the gpu tests first)" >&2
  exit 1
fi

# Libraries the host provides itself (glibc family, the C++ runtime, CUDA).
skip_re='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libutil|libanl|libnss|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnvrtc|libnvJitLink)'

for b in "${bins[@]}"; do
  cp -f "$b" "$out/bin/"
  while read -r name _ path _; do
    [[ -z ${path:-} || $path == "not" ]] && { echo "bundle.sh: $b needs $name, which ldd cannot find" >&2; exit 1; }
    if [[ $name =~ $skip_re || $path == /usr/local/cuda* ]]; then continue; fi
    cp -fL "$path" "$out/lib/$name"
  done < <(ldd "$b" | awk '/=>/ {print $1, $2, $3, $4}')
done

echo "bundle.sh: $(ls "$out/bin" | wc -l) executables, $(ls "$out/lib" | wc -l) libraries in $out"
if [[ -n $tarball ]]; then
  # xz -9: the default level gives ~63 MB, too close to the 64 MiB a device run may carry; -9 gives ~25 MB.
  tar -C "$out" -cf - bin lib | xz -9 >"$tarball"
  echo "bundle.sh: wrote $tarball ($(du -h "$tarball" | cut -f1))"
fi
