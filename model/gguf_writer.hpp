// Streaming GGUF v3 writer: metadata of every value type, tensor infos with aligned offsets, and tensor
// data appended in declaration order, so a multi-GiB model is written with bounded memory. Layout as in
// ../shared/docs/model-facts.md §1.1 (from ggml/include/gguf.h):
//
//   "GGUF" | u32 version=3 | u64 n_tensors | u64 n_kv | kv pairs | tensor infos | pad to alignment |
//   data: tensor 0, zero pad to alignment, tensor 1, zero pad, ...
//
// Use: declare every key (add_*) and every tensor (add_tensor), call begin_data() once (writes the header,
// metadata and tensor infos), then append each tensor's bytes in declaration order with write_data()
// (any number of calls per tensor), then finish(). The writer checks that exactly nbytes arrive per
// tensor and pads between tensors itself; a mistake is a gguf_write_error, never a silently bad file.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "model/ggml_type.hpp"
#include "model/gguf.hpp"

namespace worker::model {

enum class gguf_write_error_code {
  io,               // open/write/close failed
  bad_state,        // a call out of order (metadata after begin_data, data before it, finish early)
  duplicate_key,    // the same metadata key twice
  duplicate_tensor, // the same tensor name twice
  bad_tensor,       // empty name, 0 or >4 dims, a dim < 1, ne[0] not a multiple of the block size
  bad_alignment,    // alignment not a power of two
  size_mismatch,    // more (or, at finish, fewer) data bytes than the declared tensors hold
};

class gguf_write_error : public std::runtime_error {
 public:
  gguf_write_error(gguf_write_error_code code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  gguf_write_error_code code() const { return code_; }

 private:
  gguf_write_error_code code_;
};

// One declared tensor: where its bytes go relative to the data section.
struct gguf_writer_tensor {
  std::string name;
  ggml_type type;
  std::uint32_t n_dims;
  std::array<std::int64_t, 4> ne;  // ne[0] is the contiguous row length; unused dims are 1
  std::uint64_t offset;            // relative to the data section, a multiple of the alignment
  std::uint64_t nbytes;
};

class gguf_writer {
 public:
  // The file is created (truncated) at begin_data(); nothing touches the disk before.
  // `alignment` must be a power of two; 32 is GGUF's default. A value other than 32 is also written as
  // general.alignment (u32) so that readers agree.
  explicit gguf_writer(std::filesystem::path path, std::uint32_t alignment = 32);
  ~gguf_writer();  // closes the file; an unfinished file is left as is (callers remove it on error)
  gguf_writer(const gguf_writer&) = delete;
  gguf_writer& operator=(const gguf_writer&) = delete;

  // --- Metadata: one call per key, in the order they should appear in the file. -------------------
  void add_uint8(std::string_view key, std::uint8_t value);
  void add_int8(std::string_view key, std::int8_t value);
  void add_uint16(std::string_view key, std::uint16_t value);
  void add_int16(std::string_view key, std::int16_t value);
  void add_uint32(std::string_view key, std::uint32_t value);
  void add_int32(std::string_view key, std::int32_t value);
  void add_float32(std::string_view key, float value);
  void add_bool(std::string_view key, bool value);
  void add_string(std::string_view key, std::string_view value);
  void add_uint64(std::string_view key, std::uint64_t value);
  void add_int64(std::string_view key, std::int64_t value);
  void add_float64(std::string_view key, double value);

  // Arrays of one scalar type. Bool arrays take one byte per element (0 or 1), as stored.
  void add_array(std::string_view key, std::span<const std::uint8_t> values);
  void add_array(std::string_view key, std::span<const std::int8_t> values);
  void add_array(std::string_view key, std::span<const std::uint16_t> values);
  void add_array(std::string_view key, std::span<const std::int16_t> values);
  void add_array(std::string_view key, std::span<const std::uint32_t> values);
  void add_array(std::string_view key, std::span<const std::int32_t> values);
  void add_array(std::string_view key, std::span<const float> values);
  void add_array(std::string_view key, std::span<const std::uint64_t> values);
  void add_array(std::string_view key, std::span<const std::int64_t> values);
  void add_array(std::string_view key, std::span<const double> values);
  void add_bool_array(std::string_view key, std::span<const std::uint8_t> values);
  void add_array(std::string_view key, std::span<const std::string> values);
  void add_array(std::string_view key, std::span<const std::string_view> values);

  // --- Tensors -------------------------------------------------------------------------------------
  // Declares the next tensor; `ne` has 1..4 entries, ne[0] first (the row length). Returns its index.
  std::size_t add_tensor(std::string_view name, ggml_type type, std::span<const std::int64_t> ne);
  std::span<const gguf_writer_tensor> tensors() const { return tensors_; }

  // --- Data ----------------------------------------------------------------------------------------
  // Writes header, metadata, tensor infos and the padding before the data section.
  void begin_data();
  // Appends bytes of the current tensor (declaration order). A call may span the end of one tensor
  // only if it is exactly the tensor's remaining size; padding is inserted between tensors.
  void write_data(std::span<const std::byte> bytes);
  // Index of the tensor the next write_data() bytes belong to (== tensors().size() when all are done).
  std::size_t current_tensor() const { return current_; }
  // Checks every tensor got all of its bytes, flushes and closes. Returns the file size.
  std::uint64_t finish();

  std::uint64_t data_section_size() const { return data_size_; }
  std::uint64_t kv_count() const { return n_kv_; }

 private:
  void begin_kv(std::string_view key, gguf_value_type type);
  template <typename T>
  void add_scalar_array(std::string_view key, gguf_value_type elem, std::span<const T> values);
  void put_bytes(const void* data, std::size_t n);
  void put_string(std::string_view s);
  template <typename T>
  void put(T value);
  void file_write(const void* data, std::size_t n);
  void file_pad(std::uint64_t n);

  enum class state { declaring, writing_data, finished };

  std::filesystem::path path_;
  std::uint32_t alignment_;
  state state_ = state::declaring;
  std::vector<std::byte> kv_bytes_;  // encoded key/value pairs (metadata is small next to the data)
  std::uint64_t n_kv_ = 0;
  std::unordered_set<std::string> keys_;
  std::unordered_set<std::string> tensor_names_;
  std::vector<gguf_writer_tensor> tensors_;
  std::uint64_t data_size_ = 0;  // running aligned size of the data section
  std::FILE* file_ = nullptr;
  std::size_t current_ = 0;           // tensor receiving data
  std::uint64_t current_written_ = 0; // bytes of it written so far
  std::uint64_t file_pos_ = 0;
};

}  // namespace worker::model
