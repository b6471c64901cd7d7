// Streaming GGUF v3 writer (see gguf_writer.hpp for the layout and the call order).
#include "model/gguf_writer.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

namespace worker::model {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF is little-endian; this writer assumes a little-endian host");

constexpr std::uint32_t k_gguf_version = 3;
constexpr std::uint32_t k_default_alignment = 32;
constexpr std::string_view k_alignment_key = "general.alignment";

std::uint64_t align_up(std::uint64_t x, std::uint64_t a) { return (x + a - 1) / a * a; }

[[noreturn]] void fail(gguf_write_error_code code, const std::string& message) {
  throw gguf_write_error(code, "gguf writer: " + message);
}

}  // namespace

gguf_writer::gguf_writer(std::filesystem::path path, std::uint32_t alignment)
    : path_(std::move(path)), alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    fail(gguf_write_error_code::bad_alignment, "alignment " + std::to_string(alignment) + " is not a power of two");
  }
}

gguf_writer::~gguf_writer() {
  if (file_ != nullptr) std::fclose(file_);
}

// --- metadata encoding -----------------------------------------------------------------------------

void gguf_writer::put_bytes(const void* data, std::size_t n) {
  const auto* p = static_cast<const std::byte*>(data);
  kv_bytes_.insert(kv_bytes_.end(), p, p + n);
}

template <typename T>
void gguf_writer::put(T value) {
  put_bytes(&value, sizeof(T));
}

void gguf_writer::put_string(std::string_view s) {
  put<std::uint64_t>(s.size());
  put_bytes(s.data(), s.size());
}

void gguf_writer::begin_kv(std::string_view key, gguf_value_type type) {
  if (state_ != state::declaring) fail(gguf_write_error_code::bad_state, "metadata key '" + std::string(key) + "' added after begin_data()");
  if (key.empty()) fail(gguf_write_error_code::duplicate_key, "empty metadata key");
  if (!keys_.emplace(key).second) fail(gguf_write_error_code::duplicate_key, "metadata key '" + std::string(key) + "' added twice");
  put_string(key);
  put<std::int32_t>(static_cast<std::int32_t>(type));
  ++n_kv_;
}

void gguf_writer::add_uint8(std::string_view key, std::uint8_t v) { begin_kv(key, gguf_value_type::uint8); put(v); }
void gguf_writer::add_int8(std::string_view key, std::int8_t v) { begin_kv(key, gguf_value_type::int8); put(v); }
void gguf_writer::add_uint16(std::string_view key, std::uint16_t v) { begin_kv(key, gguf_value_type::uint16); put(v); }
void gguf_writer::add_int16(std::string_view key, std::int16_t v) { begin_kv(key, gguf_value_type::int16); put(v); }
void gguf_writer::add_uint32(std::string_view key, std::uint32_t v) {
  // general.alignment must agree with the alignment the offsets are computed with.
  if (key == k_alignment_key && v != alignment_) {
    fail(gguf_write_error_code::bad_alignment, "general.alignment " + std::to_string(v) + " differs from the writer's alignment " + std::to_string(alignment_));
  }
  begin_kv(key, gguf_value_type::uint32);
  put(v);
}
void gguf_writer::add_int32(std::string_view key, std::int32_t v) { begin_kv(key, gguf_value_type::int32); put(v); }
void gguf_writer::add_float32(std::string_view key, float v) { begin_kv(key, gguf_value_type::float32); put(v); }
void gguf_writer::add_bool(std::string_view key, bool v) { begin_kv(key, gguf_value_type::boolean); put<std::uint8_t>(v ? 1 : 0); }
void gguf_writer::add_string(std::string_view key, std::string_view v) { begin_kv(key, gguf_value_type::string); put_string(v); }
void gguf_writer::add_uint64(std::string_view key, std::uint64_t v) { begin_kv(key, gguf_value_type::uint64); put(v); }
void gguf_writer::add_int64(std::string_view key, std::int64_t v) { begin_kv(key, gguf_value_type::int64); put(v); }
void gguf_writer::add_float64(std::string_view key, double v) { begin_kv(key, gguf_value_type::float64); put(v); }

template <typename T>
void gguf_writer::add_scalar_array(std::string_view key, gguf_value_type elem, std::span<const T> values) {
  begin_kv(key, gguf_value_type::array);
  put<std::int32_t>(static_cast<std::int32_t>(elem));
  put<std::uint64_t>(values.size());
  put_bytes(values.data(), values.size_bytes());
}

void gguf_writer::add_array(std::string_view key, std::span<const std::uint8_t> v) { add_scalar_array(key, gguf_value_type::uint8, v); }
void gguf_writer::add_array(std::string_view key, std::span<const std::int8_t> v) { add_scalar_array(key, gguf_value_type::int8, v); }
void gguf_writer::add_array(std::string_view key, std::span<const std::uint16_t> v) { add_scalar_array(key, gguf_value_type::uint16, v); }
void gguf_writer::add_array(std::string_view key, std::span<const std::int16_t> v) { add_scalar_array(key, gguf_value_type::int16, v); }
void gguf_writer::add_array(std::string_view key, std::span<const std::uint32_t> v) { add_scalar_array(key, gguf_value_type::uint32, v); }
void gguf_writer::add_array(std::string_view key, std::span<const std::int32_t> v) { add_scalar_array(key, gguf_value_type::int32, v); }
void gguf_writer::add_array(std::string_view key, std::span<const float> v) { add_scalar_array(key, gguf_value_type::float32, v); }
void gguf_writer::add_array(std::string_view key, std::span<const std::uint64_t> v) { add_scalar_array(key, gguf_value_type::uint64, v); }
void gguf_writer::add_array(std::string_view key, std::span<const std::int64_t> v) { add_scalar_array(key, gguf_value_type::int64, v); }
void gguf_writer::add_array(std::string_view key, std::span<const double> v) { add_scalar_array(key, gguf_value_type::float64, v); }

void gguf_writer::add_bool_array(std::string_view key, std::span<const std::uint8_t> values) {
  for (auto b : values) {
    if (b > 1) fail(gguf_write_error_code::bad_state, "bool array '" + std::string(key) + "' holds a value other than 0/1");
  }
  add_scalar_array(key, gguf_value_type::boolean, values);
}

void gguf_writer::add_array(std::string_view key, std::span<const std::string> values) {
  begin_kv(key, gguf_value_type::array);
  put<std::int32_t>(static_cast<std::int32_t>(gguf_value_type::string));
  put<std::uint64_t>(values.size());
  for (const auto& s : values) put_string(s);
}

void gguf_writer::add_array(std::string_view key, std::span<const std::string_view> values) {
  begin_kv(key, gguf_value_type::array);
  put<std::int32_t>(static_cast<std::int32_t>(gguf_value_type::string));
  put<std::uint64_t>(values.size());
  for (auto s : values) put_string(s);
}

// --- tensors ---------------------------------------------------------------------------------------

std::size_t gguf_writer::add_tensor(std::string_view name, ggml_type type, std::span<const std::int64_t> ne) {
  const std::string n(name);
  if (state_ != state::declaring) fail(gguf_write_error_code::bad_state, "tensor '" + n + "' added after begin_data()");
  if (n.empty()) fail(gguf_write_error_code::bad_tensor, "empty tensor name");
  if (ne.empty() || ne.size() > 4) fail(gguf_write_error_code::bad_tensor, "tensor '" + n + "' has " + std::to_string(ne.size()) + " dims (1..4 allowed)");
  const auto& tr = traits(type);
  gguf_writer_tensor t{n, type, static_cast<std::uint32_t>(ne.size()), {1, 1, 1, 1}, 0, 0};
  std::uint64_t elems = 1;
  for (std::size_t i = 0; i < ne.size(); ++i) {
    if (ne[i] < 1) fail(gguf_write_error_code::bad_tensor, "tensor '" + n + "' dim " + std::to_string(i) + " is " + std::to_string(ne[i]));
    t.ne[i] = ne[i];
    if (elems > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(ne[i])) {
      fail(gguf_write_error_code::bad_tensor, "tensor '" + n + "' element count overflows");
    }
    elems *= static_cast<std::uint64_t>(ne[i]);
  }
  if (static_cast<std::uint64_t>(t.ne[0]) % tr.block_elems != 0) {
    fail(gguf_write_error_code::bad_tensor, "tensor '" + n + "' row length " + std::to_string(t.ne[0]) + " is not a multiple of " +
                                                std::string(tr.name) + "'s block size " + std::to_string(tr.block_elems));
  }
  if (!tensor_names_.insert(n).second) fail(gguf_write_error_code::duplicate_tensor, "tensor '" + n + "' added twice");
  t.nbytes = elems / tr.block_elems * tr.block_bytes;
  t.offset = data_size_;
  data_size_ = align_up(data_size_ + t.nbytes, alignment_);
  tensors_.push_back(std::move(t));
  return tensors_.size() - 1;
}

// --- file output -----------------------------------------------------------------------------------

void gguf_writer::file_write(const void* data, std::size_t n) {
  if (n == 0) return;
  if (std::fwrite(data, 1, n, file_) != n) {
    fail(gguf_write_error_code::io, "write to '" + path_.string() + "' failed at byte " + std::to_string(file_pos_) + ": " + std::strerror(errno));
  }
  file_pos_ += n;
}

void gguf_writer::file_pad(std::uint64_t n) {
  static constexpr std::array<std::byte, 64> zeros{};
  while (n > 0) {
    const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(n, zeros.size()));
    file_write(zeros.data(), k);
    n -= k;
  }
}

void gguf_writer::begin_data() {
  if (state_ != state::declaring) fail(gguf_write_error_code::bad_state, "begin_data() called twice");
  if (alignment_ != k_default_alignment && !keys_.contains(std::string(k_alignment_key))) {
    add_uint32(k_alignment_key, alignment_);
  }
  file_ = std::fopen(path_.c_str(), "wb");
  if (file_ == nullptr) fail(gguf_write_error_code::io, "cannot create '" + path_.string() + "': " + std::strerror(errno));
  // A large stdio buffer turns the many small header writes and the row-chunk writes into big ones.
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 22);
  state_ = state::writing_data;

  file_write("GGUF", 4);
  const std::uint32_t version = k_gguf_version;
  file_write(&version, 4);
  const std::uint64_t n_tensors = tensors_.size();
  file_write(&n_tensors, 8);
  file_write(&n_kv_, 8);
  file_write(kv_bytes_.data(), kv_bytes_.size());
  kv_bytes_.clear();
  kv_bytes_.shrink_to_fit();
  for (const auto& t : tensors_) {
    const std::uint64_t len = t.name.size();
    file_write(&len, 8);
    file_write(t.name.data(), t.name.size());
    file_write(&t.n_dims, 4);
    file_write(t.ne.data(), 8 * t.n_dims);
    const auto type = static_cast<std::int32_t>(t.type);
    file_write(&type, 4);
    file_write(&t.offset, 8);
  }
  file_pad(align_up(file_pos_, alignment_) - file_pos_);
  current_ = 0;
  current_written_ = 0;
}

void gguf_writer::write_data(std::span<const std::byte> bytes) {
  if (state_ != state::writing_data) fail(gguf_write_error_code::bad_state, "write_data() outside begin_data()/finish()");
  while (!bytes.empty()) {
    if (current_ >= tensors_.size()) {
      fail(gguf_write_error_code::size_mismatch, std::to_string(bytes.size()) + " data bytes past the last tensor");
    }
    const auto& t = tensors_[current_];
    const std::uint64_t left = t.nbytes - current_written_;
    const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(left, bytes.size()));
    file_write(bytes.data(), k);
    current_written_ += k;
    bytes = bytes.subspan(k);
    if (current_written_ == t.nbytes) {
      // Zero padding up to the next tensor's aligned offset.
      file_pad(align_up(t.nbytes, alignment_) - t.nbytes);
      ++current_;
      current_written_ = 0;
    }
  }
}

std::uint64_t gguf_writer::finish() {
  if (state_ != state::writing_data) fail(gguf_write_error_code::bad_state, "finish() without begin_data()");
  if (current_ != tensors_.size()) {
    const auto& t = tensors_[current_];
    fail(gguf_write_error_code::size_mismatch, "tensor '" + t.name + "' got " + std::to_string(current_written_) + " of " +
                                                   std::to_string(t.nbytes) + " bytes (" + std::to_string(tensors_.size() - current_) +
                                                   " tensors incomplete)");
  }
  std::FILE* f = file_;
  file_ = nullptr;
  const bool flushed = std::fflush(f) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!flushed || !closed) fail(gguf_write_error_code::io, "closing '" + path_.string() + "' failed: " + std::strerror(errno));
  state_ = state::finished;
  return file_pos_;
}

}  // namespace worker::model
