// libFuzzer target for the GGUF reader: any byte string must either parse or throw gguf_error; after a
// successful parse every metadata getter and every tensor's bytes are touched (ASan checks the reads),
// and hyperparameters are read (they must throw typed errors only).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "model/gguf.hpp"
#include "model/hparams.hpp"

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
    for (const auto& t : f.tensors()) {
      for (std::byte b : f.tensor_data(t)) sink = sink + static_cast<std::uint8_t>(b);
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
