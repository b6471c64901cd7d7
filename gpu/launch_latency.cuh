// Latency floors of the card that bound a decode step, measured in the same run as a benchmark (like the
// copy bandwidth in bandwidth.hpp): what one dependent kernel costs inside a replayed CUDA graph, with
// and without programmatic dependent launch, and what one grid-wide barrier costs inside a persistent
// (cooperative) kernel. A decode step is ~300 dependent kernels; these numbers say how much of a step
// is launch chain rather than work, and what a persistent kernel with grid barriers would save.
#pragma once

namespace worker::gpu {

struct launch_latency {
  double graph_node_us = 0.0;      // per dependent kernel node of a graph (tiny kernel, one block per SM)
  double graph_node_pdl_us = 0.0;  // the same with programmatic dependent launch between the nodes
  double grid_barrier_us = 0.0;    // per grid-wide barrier (cooperative groups) of one block per SM
};

// Throws gpu_error on a CUDA failure. Takes ~0.1 s.
launch_latency measure_launch_latency();

}  // namespace worker::gpu
