// The weight loader (see loader.hpp).
#include "gpu/loader.hpp"

#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <system_error>
#include <thread>

#include "gpu/dequant.cuh"
#include "gpu/device.hpp"
#include "gpu/gpu_error.hpp"
#include "gpu/vram_arena.hpp"
#include "model/gguf.hpp"

namespace worker::gpu {

namespace {

// One contiguous range of a tensor's bytes in the file: whole blocks [first_block, first_block + n).
struct piece {
  std::size_t tensor;
  std::uint64_t file_offset;
  std::size_t bytes;
  std::size_t first_block;
  std::size_t n_blocks;
};

class fd_guard {
 public:
  explicit fd_guard(const std::filesystem::path& p) : fd_(::open(p.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + p.string());
  }
  ~fd_guard() { ::close(fd_); }
  int get() const { return fd_; }

 private:
  int fd_;
};

void pread_all(int fd, std::byte* dst, std::size_t n, std::uint64_t off) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, dst, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "pread");
    }
    if (r == 0) throw std::system_error(EIO, std::generic_category(), "pread: unexpected end of file");
    dst += r;
    n -= static_cast<std::size_t>(r);
    off += static_cast<std::uint64_t>(r);
  }
}

// pread of one piece split over `threads` threads (small pieces stay on the caller).
void parallel_read(int fd, std::byte* dst, std::size_t n, std::uint64_t off, unsigned threads) {
  constexpr std::size_t k_min_part = std::size_t{2} << 20;
  const unsigned parts = static_cast<unsigned>(std::clamp<std::size_t>(n / k_min_part, 1, threads));
  if (parts == 1) {
    pread_all(fd, dst, n, off);
    return;
  }
  const std::size_t per = (n + parts - 1) / parts;
  std::vector<std::thread> th;
  std::vector<std::exception_ptr> errors(parts);
  for (unsigned p = 0; p < parts; ++p) {
    const std::size_t b = p * per, e = std::min(n, b + per);
    th.emplace_back([&, p, b, e] {
      try {
        pread_all(fd, dst + b, e - b, off + b);
      } catch (...) {
        errors[p] = std::current_exception();
      }
    });
  }
  for (auto& t : th) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

struct pinned_buffer {
  void* p = nullptr;
  explicit pinned_buffer(std::size_t n) { WORKER_CUDA_CHECK(cudaMallocHost(&p, n)); }
  ~pinned_buffer() { if (p) cudaFreeHost(p); }
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;
};

struct event_guard {
  cudaEvent_t e = nullptr;
  event_guard() { WORKER_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming)); }
  ~event_guard() { if (e) cudaEventDestroy(e); }
};

}  // namespace

std::string_view to_string(load_phase phase) {
  switch (phase) {
    case load_phase::planning: return "planning";
    case load_phase::copying: return "copying";
    case load_phase::done: return "done";
  }
  return "?";
}

const loaded_tensor* weight_store::find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const loaded_tensor& weight_store::at(std::string_view name) const {
  const loaded_tensor* t = find(name);
  if (!t) throw gpu_error(gpu_error_code::invalid_argument, "tensor '" + std::string(name) + "' was not loaded");
  return *t;
}

std::uint64_t weights_device_bytes(const model::gguf_file& file) {
  std::uint64_t total = 0;
  for (const auto& t : file.tensors()) {
    total += align_up(layout_of(t.type, static_cast<std::uint64_t>(t.n_rows()), static_cast<std::uint64_t>(t.ne[0])).total_bytes, 256);
  }
  return total;
}

weight_store load_weights(const std::filesystem::path& path, const model::gguf_file& file, vram_arena& arena,
                          const device_context& ctx, const loader_options& options, const load_progress_fn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  weight_store store;
  load_progress prog;
  prog.tensors_total = static_cast<std::uint32_t>(file.tensors().size());
  for (const auto& t : file.tensors()) prog.bytes_total += t.nbytes;
  if (progress) progress(prog);

  // Plan: one allocation, each tensor 256-byte aligned inside it.
  const std::uint64_t total = weights_device_bytes(file);
  const auto mark = arena.mark();
  try {
    store.allocation_ = arena.allocate(total, "weights");
    vram_region region(store.allocation_, total);
    std::vector<device_layout> layouts;
    std::vector<piece> pieces;
    const std::size_t staging = std::max<std::size_t>(options.staging_bytes, 1 << 20);
    for (const auto& t : file.tensors()) {
      loaded_tensor lt;
      lt.name = std::string(t.name);
      lt.type = t.type;
      lt.ne = t.ne;
      const auto rows = static_cast<std::uint64_t>(t.n_rows()), cols = static_cast<std::uint64_t>(t.ne[0]);
      if (rows > UINT32_MAX || cols > UINT32_MAX) {
        throw gpu_error(gpu_error_code::invalid_argument, "tensor " + lt.name + " is too large for the CUDA kernels");
      }
      const device_layout l = layout_of(t.type, rows, cols);
      lt.bytes = l.total_bytes;
      lt.base = region.carve(l.total_bytes, 256);
      lt.matrix = make_device_matrix(t.type, static_cast<std::uint32_t>(rows), static_cast<std::uint32_t>(cols), lt.base);
      const auto& tr = model::traits(t.type);
      const std::size_t n_blocks = static_cast<std::size_t>(t.nbytes / tr.block_bytes);
      const std::size_t blocks_per_piece = std::max<std::size_t>(1, staging / tr.block_bytes);
      for (std::size_t b = 0; b < n_blocks; b += blocks_per_piece) {
        const std::size_t nb = std::min(blocks_per_piece, n_blocks - b);
        pieces.push_back({store.tensors_.size(), file.data_offset() + t.offset + b * tr.block_bytes, nb * tr.block_bytes, b, nb});
      }
      store.index_[lt.name] = store.tensors_.size();
      store.tensors_.push_back(std::move(lt));
      layouts.push_back(l);
    }

    // Copy: two slots (pinned host buffer + device raw buffer for re-laid-out types), alternating.
    prog.phase = load_phase::copying;
    const fd_guard fd(path);
    pinned_buffer host0(staging), host1(staging);
    void* host[2] = {host0.p, host1.p};
    void* dev_raw[2] = {nullptr, nullptr};
    bool need_raw = false;
    for (const auto& l : layouts) need_raw = need_raw || l.split;
    if (need_raw) {
      dev_raw[0] = arena.allocate(staging, "loader_staging");
      dev_raw[1] = arena.allocate(staging, "loader_staging");
    }
    event_guard done[2];
    const cudaStream_t cs = ctx.copy_stream();
    std::vector<std::uint32_t> pieces_left(store.tensors_.size(), 0);
    for (const auto& p : pieces) ++pieces_left[p.tensor];
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      const piece& p = pieces[i];
      const int s = static_cast<int>(i & 1);
      WORKER_CUDA_CHECK(cudaEventSynchronize(done[s].e));  // slot s free again
      parallel_read(fd.get(), static_cast<std::byte*>(host[s]), p.bytes, p.file_offset, options.read_threads);
      const loaded_tensor& lt = store.tensors_[p.tensor];
      const device_layout& l = layouts[p.tensor];
      if (l.split) {
        WORKER_CUDA_CHECK(cudaMemcpyAsync(dev_raw[s], host[s], p.bytes, cudaMemcpyHostToDevice, cs));
        repack_blocks(lt.type, dev_raw[s], p.first_block, p.n_blocks, const_cast<void*>(lt.base), l, cs);
      } else {
        auto* dst = static_cast<std::byte*>(const_cast<void*>(lt.base)) + p.first_block * model::traits(lt.type).block_bytes;
        WORKER_CUDA_CHECK(cudaMemcpyAsync(dst, host[s], p.bytes, cudaMemcpyHostToDevice, cs));
      }
      WORKER_CUDA_CHECK(cudaEventRecord(done[s].e, cs));
      prog.bytes_done += p.bytes;
      if (--pieces_left[p.tensor] == 0) ++prog.tensors_done;
      if (progress) progress(prog);
    }
    WORKER_CUDA_CHECK(cudaStreamSynchronize(cs));
    if (need_raw) {
      arena.release(dev_raw[0]);
      arena.release(dev_raw[1]);
    }
  } catch (...) {
    cudaStreamSynchronize(ctx.copy_stream());
    arena.rollback(mark);
    throw;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  store.stats_.file_bytes = prog.bytes_total;
  store.stats_.device_bytes = total;
  store.stats_.seconds = secs;
  store.stats_.gb_per_s = secs > 0 ? static_cast<double>(prog.bytes_total) / secs / 1e9 : 0.0;
  prog.phase = load_phase::done;
  if (progress) progress(prog);
  return store;
}

}  // namespace worker::gpu
