// Internal to protocol/: a writer that builds a msgpack map without counting its entries up front, and
// a read-only view of a decoded msgpack map with string keys. Only protocol/*.cpp include this.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace worker::protocol::detail {

// Appends key/value entries to a buffer; finish() prefixes the map header with the final count.
class map_writer {
 public:
  map_writer& str(std::string_view key, std::string_view value) {
    key_(key);
    pk().pack_str(static_cast<std::uint32_t>(value.size()));
    pk().pack_str_body(value.data(), static_cast<std::uint32_t>(value.size()));
    return *this;
  }
  map_writer& opt_str(std::string_view key, const std::optional<std::string>& value) {
    if (value) str(key, *value);
    return *this;
  }
  // Writes nil when absent (fields documented as "str or nil").
  map_writer& str_or_nil(std::string_view key, const std::optional<std::string>& value) {
    if (value) return str(key, *value);
    key_(key);
    pk().pack_nil();
    return *this;
  }
  map_writer& uint(std::string_view key, std::uint64_t value) {
    key_(key);
    pk().pack_uint64(value);
    return *this;
  }
  map_writer& sint(std::string_view key, std::int64_t value) {
    key_(key);
    pk().pack_int64(value);
    return *this;
  }
  map_writer& real(std::string_view key, double value) {
    key_(key);
    pk().pack_double(value);
    return *this;
  }
  map_writer& boolean(std::string_view key, bool value) {
    key_(key);
    value ? pk().pack_true() : pk().pack_false();
    return *this;
  }
  map_writer& int_array(std::string_view key, const std::vector<std::int32_t>& values) {
    key_(key);
    pk().pack_array(static_cast<std::uint32_t>(values.size()));
    for (auto v : values) pk().pack_int32(v);
    return *this;
  }
  map_writer& str_array(std::string_view key, const std::vector<std::string>& values) {
    key_(key);
    pk().pack_array(static_cast<std::uint32_t>(values.size()));
    for (const auto& v : values) {
      pk().pack_str(static_cast<std::uint32_t>(v.size()));
      pk().pack_str_body(v.data(), static_cast<std::uint32_t>(v.size()));
    }
    return *this;
  }
  // A value that is already msgpack (a nested map from another map_writer::finish()).
  map_writer& raw(std::string_view key, std::string_view encoded) {
    key_(key);
    buf_.write(encoded.data(), encoded.size());
    return *this;
  }
  // An array of already-encoded values.
  map_writer& raw_array(std::string_view key, const std::vector<std::string>& encoded) {
    key_(key);
    pk().pack_array(static_cast<std::uint32_t>(encoded.size()));
    for (const auto& e : encoded) buf_.write(e.data(), e.size());
    return *this;
  }

  std::string finish() const {
    msgpack::sbuffer head;
    msgpack::packer<msgpack::sbuffer> hp(head);
    hp.pack_map(count_);
    std::string out;
    out.reserve(head.size() + buf_.size());
    out.append(head.data(), head.size());
    out.append(buf_.data(), buf_.size());
    return out;
  }

 private:
  // A packer only holds a reference to the buffer; making one per call keeps map_writer movable.
  msgpack::packer<msgpack::sbuffer> pk() { return msgpack::packer<msgpack::sbuffer>(buf_); }

  void key_(std::string_view key) {
    ++count_;
    pk().pack_str(static_cast<std::uint32_t>(key.size()));
    pk().pack_str_body(key.data(), static_cast<std::uint32_t>(key.size()));
  }

  msgpack::sbuffer buf_;
  std::uint32_t count_ = 0;
};

inline std::string_view as_view(const msgpack::object& o) {
  return {o.via.str.ptr, o.via.str.size};
}

// The entries of a msgpack map whose keys are all strings. `ok()` is false for a non-map, a non-string
// key or a repeated key; `problem()` then says which.
class map_view {
 public:
  explicit map_view(const msgpack::object& o) {
    if (o.type != msgpack::type::MAP) {
      problem_ = "body must be a msgpack map";
      return;
    }
    entries_.reserve(o.via.map.size);
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) {
        problem_ = "map keys must be strings";
        return;
      }
      const auto key = as_view(kv.key);
      bool repeated = false;
      for (const auto& e : entries_) repeated = repeated || e.first == key;
      if (repeated) {
        problem_ = "repeated key '" + std::string(key.substr(0, 64)) + "'";
        return;
      }
      entries_.emplace_back(key, &kv.val);
    }
  }

  bool ok() const { return problem_.empty(); }
  const std::string& problem() const { return problem_; }

  // The value, or nullptr when absent. An explicit nil counts as absent (see docs/protocol.md §2).
  const msgpack::object* find(std::string_view key) const {
    for (const auto& [k, v] : entries_) {
      if (k == key) return v->type == msgpack::type::NIL ? nullptr : v;
    }
    return nullptr;
  }

 private:
  std::vector<std::pair<std::string_view, const msgpack::object*>> entries_;
  std::string problem_;
};

}  // namespace worker::protocol::detail
