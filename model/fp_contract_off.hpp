// Include FIRST in a translation unit whose float results must be bit-identical on every machine (the
// block codecs: quantized bytes are part of the synthetic model files and of the oracle comparisons).
// It forbids fusing a·b + c into one FMA (one rounding instead of two; only some targets have it, e.g.
// -march=haswell or aarch64), whatever flags the build passes. CMake also passes -ffp-contract=off;
// this keeps the guarantee when the file is compiled some other way.
// No #pragma once: the pragma must take effect in each file that includes it, and it is idempotent.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
