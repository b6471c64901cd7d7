// The streaming GGUF writer: byte-exact layout of a small file assembled by hand from the format
// description (model-facts.md §1.1), every metadata value type read back by the independent reader
// (model/gguf.hpp), alignment and padding, and typed errors for every misuse.
#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <variant>
#include <vector>

#include "model/gguf.hpp"
#include "model/gguf_writer.hpp"

namespace {

using namespace worker::model;

std::filesystem::path temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "worker_orcd_synth_test";
  std::filesystem::create_directories(dir);
  return dir / name;
}

std::vector<unsigned char> read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Little-endian byte assembly for the hand-built expected file.
struct bytes_builder {
  std::vector<unsigned char> b;
  // Byte by byte (push_back), which also keeps GCC 12's -Warray-bounds false positive on insert away.
  template <typename T>
  void put(T v) {
    unsigned char tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    for (unsigned char c : tmp) b.push_back(c);
  }
  void raw(std::string_view s) {
    for (char c : s) b.push_back(static_cast<unsigned char>(c));
  }
  void str(std::string_view s) {
    put<std::uint64_t>(s.size());
    raw(s);
  }
  void zeros(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) b.push_back(0);
  }
};

gguf_write_error_code error_code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const gguf_write_error& e) {
    return e.code();
  }
  FAIL("expected a gguf_write_error");
  return gguf_write_error_code::io;
}

}  // namespace

TEST_CASE("a one-key one-tensor file is byte-for-byte the GGUF v3 layout") {
  const auto path = temp_path("exact.gguf");
  gguf_writer w(path);
  w.add_uint32("a.b", 7);
  const std::int64_t ne[] = {3};
  w.add_tensor("t", ggml_type::f32, ne);
  w.begin_data();
  const float values[3] = {1.0f, -2.0f, 0.5f};
  w.write_data(std::as_bytes(std::span(values)));
  const auto size = w.finish();

  bytes_builder e;
  e.raw("GGUF");
  e.put<std::uint32_t>(3);  // version
  e.put<std::uint64_t>(1);  // n_tensors
  e.put<std::uint64_t>(1);  // n_kv
  e.str("a.b");
  e.put<std::int32_t>(4);   // GGUF_TYPE_UINT32
  e.put<std::uint32_t>(7);
  e.str("t");
  e.put<std::uint32_t>(1);  // n_dims
  e.put<std::int64_t>(3);
  e.put<std::int32_t>(0);   // GGML_TYPE_F32
  e.put<std::uint64_t>(0);  // offset in the data section
  e.zeros((32 - e.b.size() % 32) % 32);  // data section starts 32-aligned
  for (float v : values) e.put(v);
  e.zeros(32 - 12);  // the last tensor is padded too

  CHECK(size == e.b.size());
  CHECK(read_all(path) == e.b);
}

TEST_CASE("every metadata value type and array type reads back through the GGUF reader") {
  const auto path = temp_path("all_types.gguf");
  const std::vector<std::uint8_t> u8s{0, 1, 255};
  const std::vector<std::int8_t> i8s{-128, 0, 127};
  const std::vector<std::uint16_t> u16s{1, 65535};
  const std::vector<std::int16_t> i16s{-32768, 32767};
  const std::vector<std::uint32_t> u32s{0, 4000000000u};
  const std::vector<std::int32_t> i32s{-2000000000, 5};
  const std::vector<float> f32s{1.5f, -0.25f};
  const std::vector<std::uint64_t> u64s{std::uint64_t{1} << 63};
  const std::vector<std::int64_t> i64s{-(std::int64_t{1} << 62), 3};
  const std::vector<double> f64s{3.125, -1e300};
  const std::vector<std::uint8_t> bools{1, 0, 1};
  const std::vector<std::string> strs{"Ġhello", "wörld", "<|im_end|>"};
  {
    gguf_writer w(path, 64);
    w.add_uint8("v.u8", 200);
    w.add_int8("v.i8", -5);
    w.add_uint16("v.u16", 60000);
    w.add_int16("v.i16", -30000);
    w.add_uint32("v.u32", 4000000000u);
    w.add_int32("v.i32", -2000000000);
    w.add_float32("v.f32", 1.5f);
    w.add_bool("v.bool", true);
    w.add_string("v.str", "héllo");
    w.add_uint64("v.u64", std::uint64_t{1} << 60);
    w.add_int64("v.i64", -(std::int64_t{1} << 60));
    w.add_float64("v.f64", 3.25);
    w.add_array("a.u8", std::span<const std::uint8_t>(u8s));
    w.add_array("a.i8", std::span<const std::int8_t>(i8s));
    w.add_array("a.u16", std::span<const std::uint16_t>(u16s));
    w.add_array("a.i16", std::span<const std::int16_t>(i16s));
    w.add_array("a.u32", std::span<const std::uint32_t>(u32s));
    w.add_array("a.i32", std::span<const std::int32_t>(i32s));
    w.add_array("a.f32", std::span<const float>(f32s));
    w.add_array("a.u64", std::span<const std::uint64_t>(u64s));
    w.add_array("a.i64", std::span<const std::int64_t>(i64s));
    w.add_array("a.f64", std::span<const double>(f64s));
    w.add_bool_array("a.bool", bools);
    w.add_array("a.str", std::span<const std::string>(strs));
    // Three tensors whose sizes are not multiples of the alignment: 12, 136 and 30 bytes.
    const std::int64_t ne_a[] = {3};
    const std::int64_t ne_b[] = {64, 2};
    const std::int64_t ne_c[] = {5, 3};
    w.add_tensor("a", ggml_type::f32, ne_a);
    w.add_tensor("b", ggml_type::q8_0, ne_b);
    w.add_tensor("c", ggml_type::f16, ne_c);
    REQUIRE(w.tensors()[0].offset == 0);
    REQUIRE(w.tensors()[1].offset == 64);
    REQUIRE(w.tensors()[2].offset == 256);
    w.begin_data();
    // Tensor data in uneven pieces that straddle tensor boundaries only at exact ends.
    std::vector<std::byte> a(12), b(136), c(30);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = std::byte(i + 1);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = std::byte(i * 7 + 3);
    for (std::size_t i = 0; i < c.size(); ++i) c[i] = std::byte(200 - i);
    w.write_data(a);
    w.write_data(std::span(b).first(100));
    w.write_data(std::span(b).subspan(100));
    CHECK(w.current_tensor() == 2);
    w.write_data(c);
    w.finish();

    const auto f = gguf_file::open(path);
    CHECK(f.version() == 3);
    CHECK(f.alignment() == 64);  // written as general.alignment because it is not the default
    CHECK(f.get_uint("general.alignment") == 64u);
    CHECK(f.data_offset() % 64 == 0);
    CHECK(f.get_uint("v.u8") == 200u);
    CHECK(f.find("v.u8")->type == gguf_value_type::uint8);
    CHECK(f.get_int("v.i8") == -5);
    CHECK(f.find("v.i8")->type == gguf_value_type::int8);
    CHECK(f.get_uint("v.u16") == 60000u);
    CHECK(f.find("v.u16")->type == gguf_value_type::uint16);
    CHECK(f.get_int("v.i16") == -30000);
    CHECK(f.find("v.i16")->type == gguf_value_type::int16);
    CHECK(f.get_uint("v.u32") == 4000000000u);
    CHECK(f.find("v.u32")->type == gguf_value_type::uint32);
    CHECK(f.get_int("v.i32") == -2000000000);
    CHECK(f.find("v.i32")->type == gguf_value_type::int32);
    CHECK(f.get_float("v.f32") == 1.5);
    CHECK(f.find("v.f32")->type == gguf_value_type::float32);
    CHECK(f.get_bool("v.bool") == true);
    CHECK(f.get_string("v.str") == "héllo");
    CHECK(f.get_uint("v.u64") == (std::uint64_t{1} << 60));
    CHECK(f.find("v.u64")->type == gguf_value_type::uint64);
    CHECK(f.get_int("v.i64") == -(std::int64_t{1} << 60));
    CHECK(f.find("v.i64")->type == gguf_value_type::int64);
    CHECK(f.get_float("v.f64") == 3.25);
    CHECK(f.find("v.f64")->type == gguf_value_type::float64);

    auto array_of = [&](const char* key, gguf_value_type elem) {
      const gguf_array* arr = f.get_array(key);
      REQUIRE(arr != nullptr);
      CHECK(arr->elem_type == elem);
      return arr;
    };
    auto uints = [](const gguf_array* a) {
      std::vector<std::uint64_t> v;
      for (const auto& s : a->items) v.push_back(std::get<std::uint64_t>(s));
      return v;
    };
    auto ints = [](const gguf_array* a) {
      std::vector<std::int64_t> v;
      for (const auto& s : a->items) v.push_back(std::get<std::int64_t>(s));
      return v;
    };
    auto floats = [](const gguf_array* a) {
      std::vector<double> v;
      for (const auto& s : a->items) v.push_back(std::get<double>(s));
      return v;
    };
    CHECK(uints(array_of("a.u8", gguf_value_type::uint8)) == std::vector<std::uint64_t>{0, 1, 255});
    CHECK(ints(array_of("a.i8", gguf_value_type::int8)) == std::vector<std::int64_t>{-128, 0, 127});
    CHECK(uints(array_of("a.u16", gguf_value_type::uint16)) == std::vector<std::uint64_t>{1, 65535});
    CHECK(ints(array_of("a.i16", gguf_value_type::int16)) == std::vector<std::int64_t>{-32768, 32767});
    CHECK(uints(array_of("a.u32", gguf_value_type::uint32)) == std::vector<std::uint64_t>{0, 4000000000u});
    CHECK(ints(array_of("a.i32", gguf_value_type::int32)) == std::vector<std::int64_t>{-2000000000, 5});
    CHECK(floats(array_of("a.f32", gguf_value_type::float32)) == std::vector<double>{1.5, -0.25});
    CHECK(uints(array_of("a.u64", gguf_value_type::uint64)) == std::vector<std::uint64_t>{std::uint64_t{1} << 63});
    CHECK(ints(array_of("a.i64", gguf_value_type::int64)) == std::vector<std::int64_t>{-(std::int64_t{1} << 62), 3});
    CHECK(floats(array_of("a.f64", gguf_value_type::float64)) == std::vector<double>{3.125, -1e300});
    const auto* bool_arr = array_of("a.bool", gguf_value_type::boolean);
    REQUIRE(bool_arr->items.size() == 3);
    CHECK(std::get<bool>(bool_arr->items[0]));
    CHECK_FALSE(std::get<bool>(bool_arr->items[1]));
    const auto* str_arr = array_of("a.str", gguf_value_type::string);
    REQUIRE(str_arr->items.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) CHECK(std::get<std::string_view>(str_arr->items[i]) == strs[i]);

    REQUIRE(f.tensors().size() == 3);
    const auto* tb = f.find_tensor("b");
    REQUIRE(tb != nullptr);
    CHECK(tb->type == ggml_type::q8_0);
    CHECK(tb->n_dims == 2);
    CHECK(tb->ne == std::array<std::int64_t, 4>{64, 2, 1, 1});
    CHECK(tb->offset == 64);
    CHECK(tb->nbytes == 136);
    const auto db = f.tensor_data(*tb);
    CHECK(std::equal(db.begin(), db.end(), b.begin(), b.end()));
    const auto dc = f.tensor_data(*f.find_tensor("c"));
    CHECK(std::equal(dc.begin(), dc.end(), c.begin(), c.end()));
    CHECK(f.find_tensor("c")->offset == 256);
    // The file ends with the last tensor's padding.
    CHECK(f.file_size() == f.data_offset() + 256 + 64);
  }
}

TEST_CASE("writer misuse is a typed error, never a silently wrong file") {
  const auto path = temp_path("errors.gguf");
  SECTION("duplicate key") {
    gguf_writer w(path);
    w.add_uint32("k", 1);
    CHECK(error_code_of([&] { w.add_string("k", "x"); }) == gguf_write_error_code::duplicate_key);
  }
  SECTION("duplicate tensor") {
    gguf_writer w(path);
    const std::int64_t ne[] = {32};
    w.add_tensor("t", ggml_type::f32, ne);
    CHECK(error_code_of([&] { w.add_tensor("t", ggml_type::f16, ne); }) == gguf_write_error_code::duplicate_tensor);
  }
  SECTION("row length not a multiple of the block size") {
    gguf_writer w(path);
    const std::int64_t ne_q8[] = {33, 2};
    const std::int64_t ne_k[] = {288, 2};  // a multiple of 32 but not of 256
    CHECK(error_code_of([&] { w.add_tensor("t", ggml_type::q8_0, ne_q8); }) == gguf_write_error_code::bad_tensor);
    CHECK(error_code_of([&] { w.add_tensor("u", ggml_type::q4_k, ne_k); }) == gguf_write_error_code::bad_tensor);
  }
  SECTION("bad dims") {
    gguf_writer w(path);
    const std::int64_t zero[] = {32, 0};
    const std::int64_t five[] = {32, 1, 1, 1, 1};
    CHECK(error_code_of([&] { w.add_tensor("t", ggml_type::f32, zero); }) == gguf_write_error_code::bad_tensor);
    CHECK(error_code_of([&] { w.add_tensor("t", ggml_type::f32, five); }) == gguf_write_error_code::bad_tensor);
    CHECK(error_code_of([&] { w.add_tensor("", ggml_type::f32, std::span(zero).first(1)); }) == gguf_write_error_code::bad_tensor);
  }
  SECTION("alignment") {
    CHECK(error_code_of([&] { gguf_writer w(path, 48); }) == gguf_write_error_code::bad_alignment);
    gguf_writer w(path, 32);
    CHECK(error_code_of([&] { w.add_uint32("general.alignment", 64); }) == gguf_write_error_code::bad_alignment);
  }
  SECTION("order of calls and byte counts") {
    gguf_writer w(path);
    const std::int64_t ne[] = {4};
    w.add_tensor("t", ggml_type::f32, ne);
    const std::vector<std::byte> sixteen(16), seventeen(17);
    CHECK(error_code_of([&] { w.write_data(sixteen); }) == gguf_write_error_code::bad_state);
    CHECK(error_code_of([&] { w.finish(); }) == gguf_write_error_code::bad_state);
    w.begin_data();
    CHECK(error_code_of([&] { w.add_uint8("late", 1); }) == gguf_write_error_code::bad_state);
    CHECK(error_code_of([&] { w.add_tensor("late", ggml_type::f32, ne); }) == gguf_write_error_code::bad_state);
    CHECK(error_code_of([&] { w.finish(); }) == gguf_write_error_code::size_mismatch);  // 0 of 16 bytes
    CHECK(error_code_of([&] { w.write_data(seventeen); }) == gguf_write_error_code::size_mismatch);
  }
  SECTION("an unwritable path") {
    gguf_writer w(temp_path("no/such/dir/x.gguf"));
    CHECK(error_code_of([&] { w.begin_data(); }) == gguf_write_error_code::io);
  }
}
