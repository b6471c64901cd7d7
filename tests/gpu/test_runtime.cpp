// The VRAM runtime: device probing, the arena (typed VRAM_OOM, injected failures, rollback to the
// earlier state), residency checks (device vs pinned vs pageable memory), and the pre-flight check.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <vector>

#include "gpu/bandwidth.hpp"
#include "gpu/launch_latency.cuh"
#include "gpu/vram_arena.hpp"
#include "tests/gpu/gpu_test_support.hpp"

using namespace worker::gpu;

TEST_CASE("the device context reports the card and owns working streams", "[runtime]") {
  device_context ctx(0);
  CHECK(!ctx.info().name.empty());
  CHECK(ctx.info().sm_count > 0);
  CHECK(ctx.info().total_bytes > (1ull << 30));
  CHECK(ctx.cublas() != nullptr);
  ctx.synchronize();
  const memory_info m = device_memory();
  CHECK(m.free_bytes > 0);
  CHECK(m.free_bytes <= m.total_bytes);
  WARN("device: " << ctx.info().name << ", " << ctx.info().sm_count << " SMs, " << m.free_bytes / (1 << 20)
                  << " MiB free");
}

TEST_CASE("cuda device specs parse", "[runtime]") {
  CHECK(parse_cuda_device("cuda:0") == 0);
  CHECK(parse_cuda_device("cuda:3") == 3);
  CHECK(parse_cuda_device("cuda") == 0);
  CHECK(parse_cuda_device("cpu") == -1);
  CHECK(parse_cuda_device("cuda:") == -1);
  CHECK(parse_cuda_device("cuda:x") == -1);
}

TEST_CASE("arena allocations are device-resident and recorded with tags", "[runtime]") {
  vram_arena arena(0);
  void* a = arena.allocate(1000, "weights");
  void* b = arena.allocate(1 << 20, "kv");
  CHECK(is_device_resident(a, 0));
  CHECK(is_device_resident(b, 0));
  CHECK(residency_of(a) == memory_residency::device);
  CHECK(arena.bytes_in_use() == 1024 + (1 << 20));  // rounded to 256
  CHECK(arena.bytes_in_use("kv") == (1 << 20));
  const auto all = arena.allocations();
  REQUIRE(all.size() == 2);
  CHECK(all[0].tag == "weights");
  arena.release(a);
  CHECK(arena.bytes_in_use() == (1 << 20));
}

TEST_CASE("residency distinguishes device, pinned and pageable memory", "[runtime]") {
  void* pinned = nullptr;
  REQUIRE(cudaMallocHost(&pinned, 4096) == cudaSuccess);
  CHECK(residency_of(pinned) == memory_residency::host_pinned);
  CHECK_FALSE(is_device_resident(pinned, 0));
  cudaFreeHost(pinned);
  std::vector<char> pageable(4096);
  CHECK_FALSE(is_device_resident(pageable.data(), 0));
  CHECK(residency_of(pageable.data()) == memory_residency::host_pageable);
  void* managed = nullptr;
  REQUIRE(cudaMallocManaged(&managed, 4096) == cudaSuccess);  // 4 KiB: far below what is free
  CHECK(residency_of(managed) == memory_residency::managed);
  CHECK_FALSE(is_device_resident(managed, 0));
  cudaFree(managed);
}

TEST_CASE("an injected allocation failure is a typed VRAM_OOM and changes nothing", "[runtime]") {
  vram_arena arena(0);
  arena.allocate(4096, "weights");
  const auto before = arena.bytes_in_use();
  arena.set_failure_injector([](std::size_t, std::string_view tag) { return tag == "kv"; });
  try {
    arena.allocate(1 << 20, "kv");
    FAIL("allocation did not fail");
  } catch (const gpu_error& e) {
    CHECK(e.code() == gpu_error_code::vram_oom);
  }
  CHECK(arena.bytes_in_use() == before);
  CHECK(arena.allocations().size() == 1);
  arena.set_failure_injector(nullptr);
  CHECK(arena.allocate(1 << 20, "kv") != nullptr);
}

TEST_CASE("a real out-of-memory is a typed VRAM_OOM and the device stays usable", "[runtime]") {
  // compute-sanitizer reports every failed cudaMalloc as an API error: the reduced (sanitizer) run skips
  // this deliberate one.
  if (worker::gpu::test::reduced_run()) return;
  vram_arena arena(0);
  const memory_info m = device_memory();
  try {
    arena.allocate(m.total_bytes * 2, "scratch");
    FAIL("allocation did not fail");
  } catch (const gpu_error& e) {
    CHECK(e.code() == gpu_error_code::vram_oom);
  }
  CHECK(arena.bytes_in_use() == 0);
  void* p = arena.allocate(1 << 20, "scratch");
  CHECK(cudaMemset(p, 0, 1 << 20) == cudaSuccess);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("rollback frees everything after a mark and returns VRAM to baseline", "[runtime]") {
  const auto free0 = device_memory().free_bytes;
  {
    vram_arena arena(0);
    arena.allocate(64 << 20, "weights");
    const auto m = arena.mark();
    const auto free1 = device_memory().free_bytes;
    arena.allocate(256 << 20, "kv");
    arena.allocate(128 << 20, "scratch");
    CHECK(device_memory().free_bytes <= free1 - (384ull << 20));
    arena.rollback(m);
    CHECK(arena.bytes_in_use() == (64 << 20));
    CHECK(device_memory().free_bytes == free1);
  }
  CHECK(device_memory().free_bytes == free0);
}

TEST_CASE("pre-flight refuses a plan larger than free memory with needed and free bytes", "[runtime]") {
  vram_plan plan;
  plan.weights = 10;
  plan.kv = 20;
  plan.scratch = 30;
  plan.headroom = 40;
  CHECK_NOTHROW(preflight_check(plan, 100));
  try {
    preflight_check(plan, 99);
    FAIL("no error");
  } catch (const insufficient_vram_error& e) {
    CHECK(e.code() == gpu_error_code::insufficient_vram);
    CHECK(e.needed_bytes() == 100);
    CHECK(e.free_bytes() == 99);
  }
}

TEST_CASE("copy bandwidths are measured and plausible", "[runtime]") {
  const auto d2d = measure_d2d_bandwidth(std::size_t{1} << 30, 5);
  const auto h2d = measure_h2d_bandwidth(std::size_t{256} << 20, 3);
  WARN("device-to-device copy: " << d2d.gb_per_s << " GB/s (read+write); pinned host-to-device: " << h2d.gb_per_s
                                 << " GB/s");
  CHECK(d2d.gb_per_s > 100.0);
  CHECK(h2d.gb_per_s > 1.0);
}

// The bench's latency floors: a chain of tiny dependent kernels in a graph and a cooperative kernel's
// grid barriers. Any card of the last years does each in 0.3-10 µs; 0 or a huge value means a broken
// measurement (a graph that did not run, a hang). Tagged [timing]: under compute-sanitizer every launch
// is instrumented and the bounds do not hold (the memcheck pass of gpu-host-run.sh leaves it out).
TEST_CASE("launch latencies are measured and plausible", "[runtime][timing]") {
  const launch_latency l = measure_launch_latency();
  WARN("per dependent graph node " << l.graph_node_us << " us, with PDL " << l.graph_node_pdl_us
                                   << " us; per grid barrier " << l.grid_barrier_us << " us");
  for (const double us : {l.graph_node_us, l.graph_node_pdl_us, l.grid_barrier_us}) {
    CHECK(us > 0.05);
    CHECK(us < 50.0);
  }
}
