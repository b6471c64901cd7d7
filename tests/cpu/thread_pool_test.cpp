// The thread pool covers every index exactly once and passes exceptions back to the caller.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "cpu/thread_pool.hpp"

TEST_CASE("parallel_for visits each index exactly once", "[thread_pool]") {
  worker::cpu::thread_pool pool(3);
  for (const std::size_t n : {1u, 2u, 7u, 100u, 1001u}) {
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) hits[i]++;
    });
    for (std::size_t i = 0; i < n; ++i) REQUIRE(hits[i] == 1);
  }
}

TEST_CASE("parallel_for rethrows an exception from a chunk", "[thread_pool]") {
  worker::cpu::thread_pool pool(2);
  CHECK_THROWS_AS(pool.parallel_for(100, [](std::size_t b, std::size_t) {
    if (b > 0) throw std::runtime_error("chunk failed");
  }), std::runtime_error);
  // The pool is still usable afterwards.
  std::atomic<int> sum = 0;
  pool.parallel_for(10, [&](std::size_t b, std::size_t e) { sum += static_cast<int>(e - b); });
  CHECK(sum == 10);
}
