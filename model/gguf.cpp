// GGUF v3 reader. Every count, length and offset read from the file is bounded by the bytes that remain
// before it is used to allocate or index, so no input can make the reader allocate unboundedly or read
// outside the mapping; see the validation list in gguf.hpp.
#include "model/gguf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

namespace worker::model {

std::string_view to_string(gguf_error_code code) {
  switch (code) {
    case gguf_error_code::io: return "io";
    case gguf_error_code::bad_magic: return "bad_magic";
    case gguf_error_code::bad_version: return "bad_version";
    case gguf_error_code::truncated: return "truncated";
    case gguf_error_code::count_too_large: return "count_too_large";
    case gguf_error_code::bad_string: return "bad_string";
    case gguf_error_code::bad_value_type: return "bad_value_type";
    case gguf_error_code::duplicate_key: return "duplicate_key";
    case gguf_error_code::bad_alignment: return "bad_alignment";
    case gguf_error_code::unknown_tensor_type: return "unknown_tensor_type";
    case gguf_error_code::unsupported_tensor_type: return "unsupported_tensor_type";
    case gguf_error_code::bad_dims: return "bad_dims";
    case gguf_error_code::duplicate_tensor: return "duplicate_tensor";
    case gguf_error_code::misaligned_offset: return "misaligned_offset";
    case gguf_error_code::out_of_range: return "out_of_range";
    case gguf_error_code::overlapping: return "overlapping";
    case gguf_error_code::metadata_type: return "metadata_type";
    case gguf_error_code::missing_key: return "missing_key";
    case gguf_error_code::missing_tensor: return "missing_tensor";
    case gguf_error_code::bad_shape: return "bad_shape";
    case gguf_error_code::unsupported_architecture: return "unsupported_architecture";
  }
  return "unknown";
}

namespace {

std::string describe(gguf_error_code code, const std::string& where, std::uint64_t offset,
                     const std::string& detail) {
  std::string s = "GGUF ";
  s += to_string(code);
  if (!where.empty()) s += " at '" + where + "'";
  s += " (byte " + std::to_string(offset) + "): " + detail;
  return s;
}

}  // namespace

gguf_error::gguf_error(gguf_error_code code, std::string where, std::uint64_t offset,
                       const std::string& detail)
    : std::runtime_error(describe(code, where, offset, detail)),
      code_(code),
      where_(std::move(where)),
      offset_(offset) {}

std::string_view to_string(gguf_value_type type) {
  switch (type) {
    case gguf_value_type::uint8: return "u8";
    case gguf_value_type::int8: return "i8";
    case gguf_value_type::uint16: return "u16";
    case gguf_value_type::int16: return "i16";
    case gguf_value_type::uint32: return "u32";
    case gguf_value_type::int32: return "i32";
    case gguf_value_type::float32: return "f32";
    case gguf_value_type::boolean: return "bool";
    case gguf_value_type::string: return "str";
    case gguf_value_type::array: return "arr";
    case gguf_value_type::uint64: return "u64";
    case gguf_value_type::int64: return "i64";
    case gguf_value_type::float64: return "f64";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------------
// mapped_file

mapped_file mapped_file::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw gguf_error(gguf_error_code::io, path.string(), 0, std::string("cannot open: ") + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw gguf_error(gguf_error_code::io, path.string(), 0, "not a regular file");
  }
  mapped_file m;
  m.size_ = static_cast<std::size_t>(st.st_size);
  if (m.size_ > 0) {
    void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw gguf_error(gguf_error_code::io, path.string(), 0, std::string("mmap failed: ") + std::strerror(err));
    }
    m.data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return m;
}

mapped_file::mapped_file(mapped_file&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

mapped_file& mapped_file::operator=(mapped_file&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

mapped_file::~mapped_file() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

// ---------------------------------------------------------------------------------------------------
// parsing

namespace {

constexpr std::uint64_t k_max_tensors = 1u << 20;   // real files have hundreds
constexpr std::uint64_t k_max_kv = 1u << 20;
constexpr std::uint32_t k_max_dims = 4;            // GGML_MAX_DIMS

// Sequential little-endian reader over the file bytes; every read is bounds-checked.
class cursor {
 public:
  explicit cursor(std::span<const std::byte> bytes) : bytes_(bytes) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t remaining() const { return bytes_.size() - pos_; }

  template <typename T>
  T read(const std::string& where) {
    if (remaining() < sizeof(T)) {
      throw gguf_error(gguf_error_code::truncated, where, pos_,
                       "needs " + std::to_string(sizeof(T)) + " bytes, " + std::to_string(remaining()) + " left");
    }
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string_view read_string(const std::string& where) {
    const std::uint64_t at = pos_;
    const auto len = read<std::uint64_t>(where);
    if (len > remaining()) {
      throw gguf_error(gguf_error_code::count_too_large, where, at,
                       "string length " + std::to_string(len) + " exceeds the " + std::to_string(remaining()) +
                           " bytes left in the file");
    }
    std::string_view s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<std::size_t>(len));
    pos_ += len;
    return s;
  }

 private:
  std::span<const std::byte> bytes_;
  std::uint64_t pos_ = 0;
};

// Smallest encoded size of one value of `type` (used to bound counts by the bytes left).
std::uint64_t min_encoded_size(gguf_value_type type) {
  switch (type) {
    case gguf_value_type::uint8:
    case gguf_value_type::int8:
    case gguf_value_type::boolean: return 1;
    case gguf_value_type::uint16:
    case gguf_value_type::int16: return 2;
    case gguf_value_type::uint32:
    case gguf_value_type::int32:
    case gguf_value_type::float32: return 4;
    case gguf_value_type::uint64:
    case gguf_value_type::int64:
    case gguf_value_type::float64:
    case gguf_value_type::string: return 8;  // the length prefix
    case gguf_value_type::array: return 12;  // type + count
  }
  return 1;
}

bool is_known_value_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(gguf_value_type::float64); }

gguf_scalar read_scalar(cursor& c, gguf_value_type type, const std::string& where) {
  switch (type) {
    case gguf_value_type::uint8: return std::uint64_t{c.read<std::uint8_t>(where)};
    case gguf_value_type::int8: return std::int64_t{c.read<std::int8_t>(where)};
    case gguf_value_type::uint16: return std::uint64_t{c.read<std::uint16_t>(where)};
    case gguf_value_type::int16: return std::int64_t{c.read<std::int16_t>(where)};
    case gguf_value_type::uint32: return std::uint64_t{c.read<std::uint32_t>(where)};
    case gguf_value_type::int32: return std::int64_t{c.read<std::int32_t>(where)};
    case gguf_value_type::float32: return double{c.read<float>(where)};
    case gguf_value_type::boolean: {
      const std::uint64_t at = c.pos();
      const auto b = c.read<std::uint8_t>(where);
      if (b > 1) throw gguf_error(gguf_error_code::metadata_type, where, at, "bool value " + std::to_string(b));
      return b != 0;
    }
    case gguf_value_type::string: return c.read_string(where);
    case gguf_value_type::uint64: return c.read<std::uint64_t>(where);
    case gguf_value_type::int64: return c.read<std::int64_t>(where);
    case gguf_value_type::float64: return c.read<double>(where);
    case gguf_value_type::array: break;
  }
  throw gguf_error(gguf_error_code::bad_value_type, where, c.pos(), "array where a scalar was expected");
}

std::uint64_t align_up(std::uint64_t x, std::uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

gguf_file gguf_file::open(const std::filesystem::path& path) {
  auto mapping = std::make_shared<mapped_file>(mapped_file::open(path));
  gguf_file f = parse(mapping->bytes());
  f.mapping_ = std::move(mapping);
  return f;
}

gguf_file gguf_file::parse(std::span<const std::byte> bytes) {
  gguf_file f;
  f.bytes_ = bytes;
  cursor c(bytes);

  // Header.
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0) {
    throw gguf_error(gguf_error_code::bad_magic, "", 0, "file does not start with \"GGUF\"");
  }
  c.read<std::uint32_t>("magic");
  const std::uint64_t version_at = c.pos();
  f.version_ = c.read<std::uint32_t>("version");
  if (f.version_ != 3 && f.version_ != 2) {
    // A big-endian file shows its version byte-swapped (0x03000000).
    const std::string why = (f.version_ == 0x03000000u || f.version_ == 0x02000000u)
                                ? "big-endian GGUF files are not supported"
                                : "version " + std::to_string(f.version_) + " (supported: 3, and 2 which has the same layout)";
    throw gguf_error(gguf_error_code::bad_version, "version", version_at, why);
  }
  const std::uint64_t n_tensors_at = c.pos();
  const auto n_tensors = c.read<std::uint64_t>("tensor_count");
  const std::uint64_t n_kv_at = c.pos();
  const auto n_kv = c.read<std::uint64_t>("metadata_kv_count");
  // Each tensor info takes at least 8 (name len) + 4 + 8 + 4 + 8 bytes; each kv at least 8 + 4 + 1.
  if (n_tensors > k_max_tensors || n_tensors > c.remaining() / 32) {
    throw gguf_error(gguf_error_code::count_too_large, "tensor_count", n_tensors_at,
                     std::to_string(n_tensors) + " tensors cannot fit in the file");
  }
  if (n_kv > k_max_kv || n_kv > c.remaining() / 13) {
    throw gguf_error(gguf_error_code::count_too_large, "metadata_kv_count", n_kv_at,
                     std::to_string(n_kv) + " key/value pairs cannot fit in the file");
  }

  // Metadata.
  f.kvs_.reserve(n_kv);
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    const std::uint64_t key_at = c.pos();
    const std::string_view key = c.read_string("key #" + std::to_string(i));
    if (key.empty()) throw gguf_error(gguf_error_code::bad_string, "key #" + std::to_string(i), key_at, "empty key");
    const std::string key_s(key);
    if (f.kv_index_.count(key)) throw gguf_error(gguf_error_code::duplicate_key, key_s, key_at, "key appears twice");
    const std::uint64_t type_at = c.pos();
    const auto type_id = c.read<std::uint32_t>(key_s);
    if (!is_known_value_type(type_id)) {
      throw gguf_error(gguf_error_code::bad_value_type, key_s, type_at, "value type id " + std::to_string(type_id));
    }
    gguf_kv kv{key, static_cast<gguf_value_type>(type_id), std::uint64_t{0}, nullptr, key_at};
    if (kv.type == gguf_value_type::array) {
      const std::uint64_t elem_at = c.pos();
      const auto elem_id = c.read<std::uint32_t>(key_s);
      if (!is_known_value_type(elem_id)) {
        throw gguf_error(gguf_error_code::bad_value_type, key_s, elem_at, "array element type id " + std::to_string(elem_id));
      }
      const auto elem_type = static_cast<gguf_value_type>(elem_id);
      if (elem_type == gguf_value_type::array) {
        throw gguf_error(gguf_error_code::bad_value_type, key_s, elem_at, "nested arrays are not supported");
      }
      const std::uint64_t count_at = c.pos();
      const auto count = c.read<std::uint64_t>(key_s);
      if (count > c.remaining() / min_encoded_size(elem_type)) {
        throw gguf_error(gguf_error_code::count_too_large, key_s, count_at,
                         "array of " + std::to_string(count) + " elements cannot fit in the file");
      }
      auto arr = std::make_shared<gguf_array>();
      arr->elem_type = elem_type;
      arr->items.reserve(count);
      for (std::uint64_t j = 0; j < count; ++j) arr->items.push_back(read_scalar(c, elem_type, key_s));
      kv.array = std::move(arr);
    } else {
      kv.scalar = read_scalar(c, kv.type, key_s);
    }
    f.kv_index_.emplace(key, f.kvs_.size());
    f.kvs_.push_back(std::move(kv));
  }

  // general.alignment: a u32 power of two when present.
  if (const gguf_kv* a = f.find("general.alignment")) {
    const auto* v = std::get_if<std::uint64_t>(&a->scalar);
    if (a->type != gguf_value_type::uint32 || !v || *v == 0 || (*v & (*v - 1)) != 0) {
      throw gguf_error(gguf_error_code::bad_alignment, "general.alignment", a->offset,
                       "must be a u32 power of two");
    }
    f.alignment_ = static_cast<std::uint32_t>(*v);
  }

  // Tensor infos.
  f.tensors_.reserve(n_tensors);
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    gguf_tensor_info t{};
    t.info_offset = c.pos();
    const std::string_view name = c.read_string("tensor #" + std::to_string(i));
    if (name.empty()) {
      throw gguf_error(gguf_error_code::bad_string, "tensor #" + std::to_string(i), t.info_offset, "empty tensor name");
    }
    const std::string name_s(name);
    t.name = name;
    if (f.tensor_index_.count(name)) {
      throw gguf_error(gguf_error_code::duplicate_tensor, name_s, t.info_offset, "tensor name appears twice");
    }
    const std::uint64_t dims_at = c.pos();
    t.n_dims = c.read<std::uint32_t>(name_s);
    if (t.n_dims < 1 || t.n_dims > k_max_dims) {
      throw gguf_error(gguf_error_code::bad_dims, name_s, dims_at, "n_dims " + std::to_string(t.n_dims) + " (1..4)");
    }
    t.ne = {1, 1, 1, 1};
    std::int64_t elems = 1;
    for (std::uint32_t d = 0; d < t.n_dims; ++d) {
      const std::uint64_t ne_at = c.pos();
      const auto ne = c.read<std::int64_t>(name_s);
      if (ne < 1) throw gguf_error(gguf_error_code::bad_dims, name_s, ne_at, "ne[" + std::to_string(d) + "] = " + std::to_string(ne));
      if (elems > std::numeric_limits<std::int64_t>::max() / ne) {
        throw gguf_error(gguf_error_code::bad_dims, name_s, ne_at, "element count overflows int64");
      }
      elems *= ne;
      t.ne[d] = ne;
    }
    const std::uint64_t type_at = c.pos();
    const auto type_id = c.read<std::uint32_t>(name_s);
    const auto tt = ggml_type_traits_of(type_id);
    if (!tt) {
      throw gguf_error(gguf_error_code::unknown_tensor_type, name_s, type_at, "ggml type id " + std::to_string(type_id));
    }
    if (!tt->supported) {
      throw gguf_error(gguf_error_code::unsupported_tensor_type, name_s, type_at,
                       "type " + std::string(tt->name) +
                           " is not supported (supported: f32 f16 bf16 q8_0 q4_0 q5_0 q4_k q5_k q6_k mxfp4)");
    }
    t.type = static_cast<ggml_type>(type_id);
    if (t.ne[0] % tt->block_elems != 0) {
      throw gguf_error(gguf_error_code::bad_dims, name_s, dims_at,
                       "ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + std::string(tt->name) +
                           " block size " + std::to_string(tt->block_elems));
    }
    // nbytes cannot overflow: elements <= INT64_MAX and block_bytes/block_elems <= 4 for supported types,
    // but compute per row to stay exact.
    const std::uint64_t row = static_cast<std::uint64_t>(t.ne[0]) / tt->block_elems * tt->block_bytes;
    const std::uint64_t rows = static_cast<std::uint64_t>(elems / t.ne[0]);
    if (rows != 0 && row > std::numeric_limits<std::uint64_t>::max() / rows) {
      throw gguf_error(gguf_error_code::bad_dims, name_s, dims_at, "byte size overflows");
    }
    t.nbytes = row * rows;
    const std::uint64_t off_at = c.pos();
    t.offset = c.read<std::uint64_t>(name_s);
    if (t.offset % f.alignment_ != 0) {
      throw gguf_error(gguf_error_code::misaligned_offset, name_s, off_at,
                       "offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                           std::to_string(f.alignment_));
    }
    f.tensor_index_.emplace(name, f.tensors_.size());
    f.tensors_.push_back(t);
  }

  // Data section.
  // A file without tensors (e.g. vocabulary only) may end right after its metadata.
  f.data_offset_ = align_up(c.pos(), f.alignment_);
  if (f.tensors_.empty() && f.data_offset_ > bytes.size()) f.data_offset_ = bytes.size();
  if (f.data_offset_ > bytes.size()) {
    throw gguf_error(gguf_error_code::truncated, "data section", c.pos(), "file ends before the data section");
  }
  const std::uint64_t data_size = bytes.size() - f.data_offset_;
  for (const auto& t : f.tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      throw gguf_error(gguf_error_code::out_of_range, std::string(t.name), t.info_offset,
                       "data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                           ") lies beyond the data section of " + std::to_string(data_size) + " bytes");
    }
  }
  std::vector<const gguf_tensor_info*> by_offset;
  by_offset.reserve(f.tensors_.size());
  for (const auto& t : f.tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    const auto* cur = by_offset[i];
    if (prev->offset + prev->nbytes > cur->offset) {
      throw gguf_error(gguf_error_code::overlapping, std::string(cur->name), cur->info_offset,
                       "data overlaps tensor '" + std::string(prev->name) + "'");
    }
  }
  return f;
}

// ---------------------------------------------------------------------------------------------------
// accessors

const gguf_kv* gguf_file::find(std::string_view key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second];
}

namespace {

[[noreturn]] void wrong_type(const gguf_kv& kv, std::string_view wanted) {
  throw gguf_error(gguf_error_code::metadata_type, std::string(kv.key), kv.offset,
                   "holds " + std::string(to_string(kv.type)) + ", expected " + std::string(wanted));
}

}  // namespace

std::optional<std::uint64_t> gguf_file::get_uint(std::string_view key) const {
  const gguf_kv* kv = find(key);
  if (!kv) return std::nullopt;
  if (const auto* u = std::get_if<std::uint64_t>(&kv->scalar); u && kv->type != gguf_value_type::array) return *u;
  if (const auto* i = std::get_if<std::int64_t>(&kv->scalar); i && *i >= 0) return static_cast<std::uint64_t>(*i);
  wrong_type(*kv, "a non-negative integer");
}

std::optional<std::int64_t> gguf_file::get_int(std::string_view key) const {
  const gguf_kv* kv = find(key);
  if (!kv) return std::nullopt;
  if (const auto* i = std::get_if<std::int64_t>(&kv->scalar)) return *i;
  if (const auto* u = std::get_if<std::uint64_t>(&kv->scalar);
      u && kv->type != gguf_value_type::array && *u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return static_cast<std::int64_t>(*u);
  }
  wrong_type(*kv, "an integer");
}

std::optional<double> gguf_file::get_float(std::string_view key) const {
  const gguf_kv* kv = find(key);
  if (!kv) return std::nullopt;
  if (kv->type == gguf_value_type::array) wrong_type(*kv, "a number");
  if (const auto* d = std::get_if<double>(&kv->scalar)) return *d;
  if (const auto* u = std::get_if<std::uint64_t>(&kv->scalar)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<std::int64_t>(&kv->scalar)) return static_cast<double>(*i);
  wrong_type(*kv, "a number");
}

std::optional<bool> gguf_file::get_bool(std::string_view key) const {
  const gguf_kv* kv = find(key);
  if (!kv) return std::nullopt;
  if (const auto* b = std::get_if<bool>(&kv->scalar); b && kv->type == gguf_value_type::boolean) return *b;
  wrong_type(*kv, "a bool");
}

std::optional<std::string_view> gguf_file::get_string(std::string_view key) const {
  const gguf_kv* kv = find(key);
  if (!kv) return std::nullopt;
  if (const auto* s = std::get_if<std::string_view>(&kv->scalar); s && kv->type == gguf_value_type::string) return *s;
  wrong_type(*kv, "a string");
}

const gguf_array* gguf_file::get_array(std::string_view key) const {
  const gguf_kv* kv = find(key);
  if (!kv) return nullptr;
  if (kv->type != gguf_value_type::array) wrong_type(*kv, "an array");
  return kv->array.get();
}

const gguf_tensor_info* gguf_file::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const std::byte> gguf_file::tensor_data(const gguf_tensor_info& tensor) const {
  return bytes_.subspan(data_offset_ + tensor.offset, tensor.nbytes);
}

std::string format_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace worker::model
