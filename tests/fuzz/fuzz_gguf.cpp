// libFuzzer target for the GGUF reader: any byte string must either parse or throw gguf_error; after a
// successful parse every metadata getter and every tensor's bytes are touched (ASan checks the reads),
// the first row of every tensor is dequantized, and hyperparameters are read (they must throw typed errors only).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/gguf.hpp"
#include "model/hparams.hpp"
#include "model/quant.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace worker::model;
  try {
    const gguf_file f = gguf_file::parse(std::span(reinterpret_cast<const std::byte*>(data), size));
    volatile std::uint64_t sink = 0;
    for (const auto& kv : f.metadata()) {
      sink = sink + kv.key.size();
      const std::string key(kv.key);
      try {
        if (auto s = f.get_string(key)) sink = sink + s->size();
      } catch (const gguf_error&) {
      }
      try {
        if (auto u = f.get_uint(key)) sink = sink + *u;
      } catch (const gguf_error&) {
      }
      try {
        if (const auto* a = f.get_array(key)) sink = sink + a->items.size();
      } catch (const gguf_error&) {
      }
    }
    std::vector<float> row;
    for (const auto& t : f.tensors()) {
      for (std::byte b : f.tensor_data(t)) sink = sink + static_cast<std::uint8_t>(b);
      // Dequantize the first row: the reader promised ne[0] is whole blocks inside the data.
      if (t.ne[0] <= (1 << 16)) {
        row.resize(static_cast<std::size_t>(t.ne[0]));
        dequantize_row(t.type, f.tensor_data(t).data(), row.data(), row.size());
      }
    }
    try {
      const model_hparams hp = read_hparams(f);
      sink = sink + kv_cache_bytes_f16(hp, 4096);
    } catch (const gguf_error&) {
    }
  } catch (const gguf_error&) {
  }
  return 0;
}
