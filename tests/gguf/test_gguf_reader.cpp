// GGUF reader: well-formed files parse to the exact values written; each kind of malformed file is
// rejected with its typed error code and the right location, never a crash or an out-of-bounds read
// (these tests also run under the fuzzer's sanitizers in tests/fuzz).
#include <catch2/catch.hpp>

#include <fstream>
#include <span>

#include "model/gguf.hpp"
#include "tests/gguf/gguf_test_builder.hpp"

using worker::model::gguf_error;
using worker::model::gguf_error_code;
using worker::model::gguf_file;
using worker::model::ggml_type;
using worker::test::gguf_bytes;

namespace {

gguf_error_code error_of(const gguf_bytes& b) {
  try {
    gguf_file::parse(b.bytes());
  } catch (const gguf_error& e) {
    return e.code();
  }
  FAIL("the reader accepted a malformed file");
  return gguf_error_code::io;
}

// Two tensors: a 64-element f32 vector at offset 0 and a [32, 2] q8_0 matrix at offset 256.
gguf_bytes valid_file() {
  gguf_bytes b;
  b.header(2, 4)
      .kv_str("general.architecture", "qwen2")
      .kv_u32("qwen2.block_count", 28)
      .kv_f32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f)
      .kv_bool("tokenizer.ggml.add_bos_token", false);
  b.tensor("norm.weight", {64}, 0, 0).tensor("proj.weight", {32, 2}, 8, 256);
  b.pad_to(32);
  b.zeros(256);  // norm.weight: 64 * 4 bytes
  for (int i = 0; i < 68; ++i) b.buf.push_back(static_cast<std::uint8_t>(i));  // 2 q8_0 blocks
  return b;
}

}  // namespace

TEST_CASE("a well-formed file parses to the values written", "[gguf]") {
  const gguf_bytes b = valid_file();
  const gguf_file f = gguf_file::parse(b.bytes());
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.metadata().size() == 4);
  CHECK(f.get_string("general.architecture") == "qwen2");
  CHECK(f.get_uint("qwen2.block_count") == 28u);
  CHECK(f.get_float("qwen2.attention.layer_norm_rms_epsilon").value() == Approx(1e-6));
  CHECK(f.get_bool("tokenizer.ggml.add_bos_token") == false);
  CHECK_FALSE(f.get_uint("absent.key").has_value());
  REQUIRE(f.tensors().size() == 2);
  const auto* proj = f.find_tensor("proj.weight");
  REQUIRE(proj != nullptr);
  CHECK(proj->type == ggml_type::q8_0);
  CHECK(proj->ne[0] == 32);
  CHECK(proj->ne[1] == 2);
  CHECK(proj->nbytes == 68);
  const auto data = f.tensor_data(*proj);
  REQUIRE(data.size() == 68);
  CHECK(static_cast<int>(data[0]) == 0);
  CHECK(static_cast<int>(data[67]) == 67);
  CHECK(f.data_offset() % 32 == 0);
}

TEST_CASE("typed getters refuse values of the wrong type", "[gguf]") {
  const gguf_bytes b = valid_file();
  const gguf_file f = gguf_file::parse(b.bytes());
  CHECK_THROWS_AS(f.get_uint("general.architecture"), gguf_error);
  CHECK_THROWS_AS(f.get_string("qwen2.block_count"), gguf_error);
  CHECK_THROWS_AS(f.get_array("qwen2.block_count"), gguf_error);
  try {
    f.get_bool("qwen2.block_count");
    FAIL("no throw");
  } catch (const gguf_error& e) {
    CHECK(e.code() == gguf_error_code::metadata_type);
    CHECK(e.where() == "qwen2.block_count");
  }
}

TEST_CASE("every truncation of a valid file is rejected with a typed error", "[gguf]") {
  const gguf_bytes full = valid_file();
  for (std::size_t n = 0; n < full.buf.size(); ++n) {
    gguf_bytes cut;
    cut.buf.assign(full.buf.begin(), full.buf.begin() + static_cast<std::ptrdiff_t>(n));
    const auto code = error_of(cut);
    INFO("truncated to " << n << " bytes");
    CHECK((code == gguf_error_code::truncated || code == gguf_error_code::bad_magic ||
           code == gguf_error_code::count_too_large || code == gguf_error_code::out_of_range));
  }
}

TEST_CASE("bad magic and unsupported versions are rejected", "[gguf]") {
  gguf_bytes b = valid_file();
  b.buf[0] = 'X';
  CHECK(error_of(b) == gguf_error_code::bad_magic);

  gguf_bytes v1;
  v1.header(0, 0, 1);
  CHECK(error_of(v1) == gguf_error_code::bad_version);

  gguf_bytes big_endian;
  big_endian.header(0, 0, 0x03000000u);
  try {
    gguf_file::parse(big_endian.bytes());
    FAIL("accepted");
  } catch (const gguf_error& e) {
    CHECK(e.code() == gguf_error_code::bad_version);
    CHECK(std::string(e.what()).find("big-endian") != std::string::npos);
    CHECK(e.offset() == 4);
  }

  gguf_bytes v2;  // version 2 has the v3 layout
  v2.header(0, 1, 2).kv_u32("a.b", 1);
  CHECK(gguf_file::parse(v2.bytes()).version() == 2);
}

TEST_CASE("huge counts and lengths are rejected before any allocation", "[gguf]") {
  gguf_bytes tensors;
  tensors.header(UINT64_MAX, 0);
  CHECK(error_of(tensors) == gguf_error_code::count_too_large);

  gguf_bytes kvs;
  kvs.header(0, 1ull << 40);
  CHECK(error_of(kvs) == gguf_error_code::count_too_large);

  gguf_bytes key_len;
  key_len.header(0, 1).put<std::uint64_t>(1ull << 62);
  CHECK(error_of(key_len) == gguf_error_code::count_too_large);

  gguf_bytes array_count;  // an array claiming 2^60 u32 elements in a file of a few bytes
  array_count.header(0, 1).str("arr").put<std::uint32_t>(9).put<std::uint32_t>(4).put<std::uint64_t>(1ull << 60);
  CHECK(error_of(array_count) == gguf_error_code::count_too_large);

  gguf_bytes string_array;  // strings need at least 8 bytes each
  string_array.header(0, 1).str("arr").put<std::uint32_t>(9).put<std::uint32_t>(8).put<std::uint64_t>(3).zeros(16);
  CHECK(error_of(string_array) == gguf_error_code::count_too_large);
}

TEST_CASE("unknown value types, nested arrays and duplicate keys are rejected", "[gguf]") {
  gguf_bytes unknown;
  unknown.header(0, 1).str("k").put<std::uint32_t>(13).put<std::uint32_t>(0);
  CHECK(error_of(unknown) == gguf_error_code::bad_value_type);

  gguf_bytes nested;
  nested.header(0, 1).str("k").put<std::uint32_t>(9).put<std::uint32_t>(9).put<std::uint64_t>(0);
  CHECK(error_of(nested) == gguf_error_code::bad_value_type);

  gguf_bytes dup;
  dup.header(0, 2).kv_u32("k", 1).kv_u32("k", 2);
  CHECK(error_of(dup) == gguf_error_code::duplicate_key);

  gguf_bytes bad_bool;
  bad_bool.header(0, 1).str("k").put<std::uint32_t>(7).put<std::uint8_t>(2);
  CHECK(error_of(bad_bool) == gguf_error_code::metadata_type);
}

TEST_CASE("general.alignment must be a u32 power of two and is honoured", "[gguf]") {
  gguf_bytes three;
  three.header(0, 1).kv_u32("general.alignment", 3);
  CHECK(error_of(three) == gguf_error_code::bad_alignment);

  gguf_bytes as_string;
  as_string.header(0, 1).kv_str("general.alignment", "64");
  CHECK(error_of(as_string) == gguf_error_code::bad_alignment);

  gguf_bytes b64;  // offset 32 is aligned to the default 32 but not to 64
  b64.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {8}, 0, 32).pad_to(64).zeros(64);
  CHECK(error_of(b64) == gguf_error_code::misaligned_offset);

  gguf_bytes ok;
  ok.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {8}, 0, 0).pad_to(64).zeros(32);
  const auto f = gguf_file::parse(ok.bytes());
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() % 64 == 0);
}

TEST_CASE("tensor infos are validated: types, dims, offsets, overlap, names", "[gguf]") {
  auto one_tensor = [](std::vector<std::int64_t> ne, std::uint32_t type, std::uint64_t offset, std::size_t data) {
    gguf_bytes b;
    b.header(1, 0).tensor("blk.0.attn_q.weight", std::move(ne), type, offset).pad_to(32).zeros(data);
    return b;
  };
  CHECK(error_of(one_tensor({32}, 4, 0, 64)) == gguf_error_code::unknown_tensor_type);  // id 4 was removed
  CHECK(error_of(one_tensor({32}, 99, 0, 64)) == gguf_error_code::unknown_tensor_type);
  CHECK(error_of(one_tensor({32}, 3, 0, 64)) == gguf_error_code::unsupported_tensor_type);   // q4_1
  CHECK(error_of(one_tensor({256}, 10, 0, 128)) == gguf_error_code::unsupported_tensor_type);  // q2_k
  CHECK(error_of(one_tensor({0}, 0, 0, 64)) == gguf_error_code::bad_dims);
  CHECK(error_of(one_tensor({-4}, 0, 0, 64)) == gguf_error_code::bad_dims);
  CHECK(error_of(one_tensor({1, 1, 1, 1, 1}, 0, 0, 64)) == gguf_error_code::bad_dims);  // 5 dims
  CHECK(error_of(one_tensor({48}, 8, 0, 64)) == gguf_error_code::bad_dims);             // 48 % 32
  CHECK(error_of(one_tensor({128}, 12, 0, 144)) == gguf_error_code::bad_dims);          // q4_k needs 256
  CHECK(error_of(one_tensor({1ll << 40, 1ll << 40}, 0, 0, 64)) == gguf_error_code::bad_dims);  // overflow
  CHECK(error_of(one_tensor({32}, 0, 7, 256)) == gguf_error_code::misaligned_offset);
  CHECK(error_of(one_tensor({32}, 0, 0, 127)) == gguf_error_code::out_of_range);  // needs 128 bytes
  CHECK(error_of(one_tensor({32}, 0, 1ull << 62, 128)) == gguf_error_code::out_of_range);
  CHECK(error_of(one_tensor({32}, 0, UINT64_MAX - 31, 128)) == gguf_error_code::out_of_range);

  gguf_bytes overlap;
  overlap.header(2, 0).tensor("a", {32}, 0, 0).tensor("b", {32}, 0, 96).pad_to(32).zeros(256);
  try {
    gguf_file::parse(overlap.bytes());
    FAIL("accepted overlapping tensors");
  } catch (const gguf_error& e) {
    CHECK(e.code() == gguf_error_code::overlapping);
    CHECK(e.where() == "b");
  }

  gguf_bytes dup;
  dup.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad_to(32).zeros(64);
  CHECK(error_of(dup) == gguf_error_code::duplicate_tensor);

  gguf_bytes empty_name;
  empty_name.header(1, 0).tensor("", {8}, 0, 0).pad_to(32).zeros(32);
  CHECK(error_of(empty_name) == gguf_error_code::bad_string);
}

TEST_CASE("errors name the tensor and the byte offset of its info", "[gguf]") {
  gguf_bytes b;
  b.header(1, 0);
  const std::size_t info_at = b.buf.size();
  b.tensor("blk.3.ffn_down.weight", {32}, 99, 0).pad_to(32).zeros(128);
  try {
    gguf_file::parse(b.bytes());
    FAIL("accepted");
  } catch (const gguf_error& e) {
    CHECK(e.code() == gguf_error_code::unknown_tensor_type);
    CHECK(e.where() == "blk.3.ffn_down.weight");
    // name (8 + 21) + n_dims (4) + ne (8) precede the type field.
    CHECK(e.offset() == info_at + 8 + 21 + 4 + 8);
    CHECK(std::string(e.what()).find("blk.3.ffn_down.weight") != std::string::npos);
  }
}

TEST_CASE("open() maps a file from disk and reports io errors", "[gguf]") {
  CHECK_THROWS_AS(gguf_file::open("/nonexistent/model.gguf"), gguf_error);
  const gguf_bytes b = valid_file();
  const std::string path = "test_gguf_reader_tmp.gguf";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.buf.data()), static_cast<std::streamsize>(b.buf.size()));
  }
  const gguf_file f = gguf_file::open(path);
  CHECK(f.file_size() == b.buf.size());
  CHECK(f.find_tensor("proj.weight")->nbytes == 68);
  std::remove(path.c_str());
}
