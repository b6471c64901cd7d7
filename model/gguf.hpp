// GGUF v3 reader: maps a file, validates every byte it will later trust, and exposes typed metadata and
// tensor infos. Layout: ../shared/docs/model-facts.md §1 (from ggml/include/gguf.h).
//
// Validation happens once, in gguf_file::parse: after it returns, every tensor's bytes lie inside the
// file, are aligned, do not overlap another tensor's, and have a supported type whose block size divides
// ne[0]. Every failure is a gguf_error naming what was wrong, the key or tensor, and the byte offset.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "model/ggml_type.hpp"

namespace worker::model {

enum class gguf_error_code {
  io,                       // open/stat/mmap failed
  bad_magic,                // not "GGUF"
  bad_version,              // not 2 or 3 (or a big-endian file)
  truncated,                // a read ran past the end of the file
  count_too_large,          // a tensor/kv/array count or string length cannot fit in the file
  bad_string,               // a key or string value is empty where it must not be, or invalid
  bad_value_type,           // unknown gguf_type id, or a nested array
  duplicate_key,            // the same metadata key twice
  bad_alignment,            // general.alignment not a u32 power of two
  unknown_tensor_type,      // ggml type id that ggml does not define
  unsupported_tensor_type,  // known ggml type that this worker does not implement
  bad_dims,                 // n_dims not 1..4, a dim < 1, element count overflow, ne[0] % block != 0
  duplicate_tensor,         // the same tensor name twice
  misaligned_offset,        // tensor offset not a multiple of the alignment
  out_of_range,             // tensor data past the end of the file
  overlapping,              // two tensors share bytes
  metadata_type,            // a key holds a value of the wrong type for its use
  missing_key,              // a required key is absent
  missing_tensor,           // a required tensor is absent
  bad_shape,                // a tensor's shape does not match what the architecture needs
  unsupported_architecture, // general.architecture names no adapter
};

std::string_view to_string(gguf_error_code code);

class gguf_error : public std::runtime_error {
 public:
  gguf_error(gguf_error_code code, std::string where, std::uint64_t offset, const std::string& detail);
  gguf_error_code code() const { return code_; }
  const std::string& where() const { return where_; }  // key or tensor name ("" for header fields)
  std::uint64_t offset() const { return offset_; }     // byte offset in the file

 private:
  gguf_error_code code_;
  std::string where_;
  std::uint64_t offset_;
};

// Metadata value type ids (enum gguf_type in gguf.h).
enum class gguf_value_type : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

std::string_view to_string(gguf_value_type type);

// One scalar, widened: unsigned ints -> uint64, signed -> int64, floats -> double. Strings point into
// the mapped file (valid while the gguf_file lives).
using gguf_scalar = std::variant<std::uint64_t, std::int64_t, double, bool, std::string_view>;

struct gguf_array {
  gguf_value_type elem_type;
  std::vector<gguf_scalar> items;
};

struct gguf_kv {
  std::string_view key;
  gguf_value_type type;
  gguf_scalar scalar;                  // when type != array
  std::shared_ptr<const gguf_array> array;  // when type == array
  std::uint64_t offset;                // byte offset of the key in the file (for error messages)
};

struct gguf_tensor_info {
  std::string_view name;
  ggml_type type;
  std::uint32_t n_dims;
  std::array<std::int64_t, 4> ne;  // ne[0] is the contiguous (row) dimension; unused dims are 1
  std::uint64_t offset;            // relative to the data section
  std::uint64_t nbytes;
  std::uint64_t info_offset;       // byte offset of this tensor info in the file

  std::int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  std::int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

// Read-only mapping of a whole file.
class mapped_file {
 public:
  static mapped_file open(const std::filesystem::path& path);  // throws gguf_error(io)
  mapped_file() = default;
  mapped_file(mapped_file&& other) noexcept;
  mapped_file& operator=(mapped_file&& other) noexcept;
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file();

  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

class gguf_file {
 public:
  // Maps and validates the file at `path`. Throws gguf_error.
  static gguf_file open(const std::filesystem::path& path);
  // Validates bytes owned by the caller (they must outlive the result). Throws gguf_error.
  static gguf_file parse(std::span<const std::byte> bytes);

  std::uint32_t version() const { return version_; }
  std::uint32_t alignment() const { return alignment_; }
  std::uint64_t data_offset() const { return data_offset_; }
  std::uint64_t file_size() const { return bytes_.size(); }
  std::span<const std::byte> bytes() const { return bytes_; }

  std::span<const gguf_kv> metadata() const { return kvs_; }
  const gguf_kv* find(std::string_view key) const;

  // Typed getters: nullopt when the key is absent; gguf_error(metadata_type) when present with a type
  // that cannot represent the request (e.g. a string read as an integer, a negative int read as uint).
  std::optional<std::uint64_t> get_uint(std::string_view key) const;
  std::optional<std::int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // accepts ints too
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string_view> get_string(std::string_view key) const;
  const gguf_array* get_array(std::string_view key) const;  // nullptr when absent; throws if not array

  std::span<const gguf_tensor_info> tensors() const { return tensors_; }
  const gguf_tensor_info* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the mapping (validated in parse).
  std::span<const std::byte> tensor_data(const gguf_tensor_info& tensor) const;

 private:
  gguf_file() = default;
  std::shared_ptr<mapped_file> mapping_;  // null when parsing caller-owned bytes
  std::span<const std::byte> bytes_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::vector<gguf_kv> kvs_;
  std::vector<gguf_tensor_info> tensors_;
  std::unordered_map<std::string_view, std::size_t> kv_index_;
  std::unordered_map<std::string_view, std::size_t> tensor_index_;
};

// Helpers for tools and error messages.
std::string format_bytes(std::uint64_t bytes);  // "4.36 GiB"

}  // namespace worker::model
