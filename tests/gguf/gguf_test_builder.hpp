// Builds GGUF byte images by hand for reader tests: every field is written explicitly so a test can
// corrupt exactly one of them. Independent of model/gguf_writer (the product's writer) on purpose.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <span>
#include <vector>

namespace worker::test {

class gguf_bytes {
 public:
  std::vector<std::uint8_t> buf;

  template <typename T>
  gguf_bytes& put(T v) {
    std::uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    for (std::uint8_t byte : raw) buf.push_back(byte);
    return *this;
  }
  gguf_bytes& str(const std::string& s) {
    put<std::uint64_t>(s.size());
    buf.insert(buf.end(), s.begin(), s.end());
    return *this;
  }
  gguf_bytes& header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
    for (char c : {'G', 'G', 'U', 'F'}) buf.push_back(static_cast<std::uint8_t>(c));
    return put<std::uint32_t>(version).put<std::uint64_t>(n_tensors).put<std::uint64_t>(n_kv);
  }
  gguf_bytes& kv_u32(const std::string& key, std::uint32_t v) { return str(key).put<std::uint32_t>(4).put(v); }
  gguf_bytes& kv_f32(const std::string& key, float v) { return str(key).put<std::uint32_t>(6).put(v); }
  gguf_bytes& kv_str(const std::string& key, const std::string& v) { return str(key).put<std::uint32_t>(8).str(v); }
  gguf_bytes& kv_bool(const std::string& key, bool v) { return str(key).put<std::uint32_t>(7).put<std::uint8_t>(v); }
  gguf_bytes& tensor(const std::string& name, std::vector<std::int64_t> ne, std::uint32_t type, std::uint64_t offset) {
    str(name).put<std::uint32_t>(static_cast<std::uint32_t>(ne.size()));
    for (auto n : ne) put<std::int64_t>(n);
    return put<std::uint32_t>(type).put<std::uint64_t>(offset);
  }
  gguf_bytes& pad_to(std::size_t alignment) {
    while (buf.size() % alignment) buf.push_back(0);
    return *this;
  }
  gguf_bytes& zeros(std::size_t n) {
    buf.insert(buf.end(), n, 0);
    return *this;
  }
  std::span<const std::byte> bytes() const { return {reinterpret_cast<const std::byte*>(buf.data()), buf.size()}; }
};

}  // namespace worker::test
