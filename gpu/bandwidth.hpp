// Ceilings measured on the card in the same run as a benchmark: device-to-device copy bandwidth
// (bytes read + bytes written per second, the figure the decode roofline uses) and pinned
// host-to-device copy bandwidth (what the loader can reach at best).
#pragma once

#include <cstddef>

namespace worker::gpu {

struct bandwidth_result {
  double gb_per_s = 0.0;  // 1e9 bytes per second
  double seconds = 0.0;   // median time of one repetition
  std::size_t bytes = 0;  // bytes moved per repetition (read + write for D2D)
};

// Copies a `bytes`-sized device buffer to another `reps` times (after a warm-up); median time.
bandwidth_result measure_d2d_bandwidth(std::size_t bytes = std::size_t{2} << 30, int reps = 10);
// Pinned host → device copies of `bytes`.
bandwidth_result measure_h2d_bandwidth(std::size_t bytes = std::size_t{512} << 20, int reps = 5);

}  // namespace worker::gpu
