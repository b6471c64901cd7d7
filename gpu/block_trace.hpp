// Block timelines of the decode kernels (diagnostics, host side). In a build configured with
// -DWORKER_ORCD_BLOCK_TRACE=ON, thread 0 of every block of the RMSNorm, attention split and merge, int8
// quantization and fan-out matvec kernels (and of the embedding gather and the greedy argmax, which
// bracket a step) records when the block started, when its wait for the
// producer (griddepcontrol.wait) returned and when thread 0 was done — with the global timer, so that
// one decode step's launches can be laid side by side: where a layer's time goes between one kernel's
// last block and the next one's first useful instruction, which per-kernel profilers (serialized
// launches) cannot show. In other builds the kernels carry no trace code and enabling reports that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace worker::gpu {

// Which kernel a record is from (block_trace_kernel_name).
enum class traced_kernel : std::uint16_t { rmsnorm = 1, attn_split, attn_merge, quantize_q8, matvec_fanout, gather, argmax };
const char* block_trace_kernel_name(std::uint16_t kernel);

struct block_trace_record {
  unsigned long long start_ns;  // global timer, thread 0's first instruction
  unsigned long long grid;      // %gridid: one value per launch
  std::uint32_t wait_ns;        // start → past griddepcontrol.wait (0: the kernel has no wait)
  std::uint32_t end_ns;         // start → thread 0 done (after the block's last barrier where it has one)
  std::uint32_t block;          // linear block index
  std::uint16_t kernel;         // traced_kernel
  std::uint16_t smid;
};
static_assert(sizeof(block_trace_record) == 32);

// True in a build with the trace compiled in.
bool block_trace_compiled();
// Starts recording into a fresh device buffer of `capacity` records (later blocks are dropped);
// throws gpu_error(invalid_argument) in a build without the trace.
void block_trace_start(std::size_t capacity);
// Stops recording and returns the records in the order their blocks claimed slots.
std::vector<block_trace_record> block_trace_stop();

}  // namespace worker::gpu
