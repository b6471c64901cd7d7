// Test helper: builds arbitrary msgpack bodies (including wrong types, bin, nil and non-string keys)
// from a small value tree, independently of the codec under test.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace test_msgpack {

struct nil_t {};
struct bin_t {
  std::string bytes;
};
struct value;
using array = std::vector<value>;
using entries = std::vector<std::pair<value, value>>;  // keys may be any value (to test non-string keys)
struct map_t {
  entries items;
};

struct value {
  std::variant<nil_t, bool, std::int64_t, std::uint64_t, double, std::string, bin_t, array, map_t> v;
  value() : v(nil_t{}) {}
  value(nil_t) : v(nil_t{}) {}
  value(bool b) : v(b) {}
  value(int i) : v(static_cast<std::int64_t>(i)) {}
  value(std::int64_t i) : v(i) {}
  value(std::uint64_t u) : v(u) {}
  value(double d) : v(d) {}
  value(const char* s) : v(std::string(s)) {}
  value(std::string s) : v(std::move(s)) {}
  value(bin_t b) : v(std::move(b)) {}
  value(array a) : v(std::move(a)) {}
  value(map_t m) : v(std::move(m)) {}
};

inline map_t map(entries items) { return map_t{std::move(items)}; }

inline void pack(msgpack::packer<msgpack::sbuffer>& pk, const value& x) {
  struct visitor {
    msgpack::packer<msgpack::sbuffer>& pk;
    void operator()(nil_t) { pk.pack_nil(); }
    void operator()(bool b) { b ? pk.pack_true() : pk.pack_false(); }
    void operator()(std::int64_t i) { pk.pack_int64(i); }
    void operator()(std::uint64_t u) { pk.pack_uint64(u); }
    void operator()(double d) { pk.pack_double(d); }
    void operator()(const std::string& s) {
      pk.pack_str(static_cast<std::uint32_t>(s.size()));
      pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
    }
    void operator()(const bin_t& b) {
      pk.pack_bin(static_cast<std::uint32_t>(b.bytes.size()));
      pk.pack_bin_body(b.bytes.data(), static_cast<std::uint32_t>(b.bytes.size()));
    }
    void operator()(const array& a) {
      pk.pack_array(static_cast<std::uint32_t>(a.size()));
      for (const auto& e : a) pack(pk, e);
    }
    void operator()(const map_t& m) {
      pk.pack_map(static_cast<std::uint32_t>(m.items.size()));
      for (const auto& [k, v] : m.items) {
        pack(pk, k);
        pack(pk, v);
      }
    }
  };
  std::visit(visitor{pk}, x.v);
}

inline std::string encode(const value& x) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pack(pk, x);
  return {buf.data(), buf.size()};
}

}  // namespace test_msgpack
