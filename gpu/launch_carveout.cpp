// The shared-memory carveout switch of launch.cuh.
#include <cuda_runtime.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "gpu/gpu_error.hpp"
#include "gpu/launch.cuh"
#include "model/comma_list.hpp"

namespace worker::gpu {

namespace {

struct carveout_spec {
  bool set = false;   // the variable is set: it replaces every kernel's default preference
  int percent = -1;   // -1: no preference (value "driver")
  std::vector<std::string> patterns;  // empty: every kernel
};

const carveout_spec& spec() {
  static const carveout_spec s = [] {
    carveout_spec r;
    const char* e = std::getenv("WORKER_ORCD_SMEM_CARVEOUT");
    if (!e || !*e) return r;
    r.set = true;
    const std::string v(e);
    if (v == "driver") return r;
    const std::size_t colon = v.find(':');
    const std::string num = v.substr(0, colon);
    char* end = nullptr;
    const long p = std::strtol(num.c_str(), &end, 10);
    if (num.empty() || *end != '\0' || p < 0 || p > 100)
      throw gpu_error(gpu_error_code::invalid_argument,
                      "WORKER_ORCD_SMEM_CARVEOUT must be P, P:pat+pat (P 0..100) or driver, got " + v);
    r.percent = static_cast<int>(p);
    if (colon != std::string::npos) {
      std::string pats = v.substr(colon + 1);
      for (char& c : pats)
        if (c == '+') c = ',';
      r.patterns = model::split_comma_list(pats);
    }
    return r;
  }();
  return s;
}

std::mutex& carveout_mutex() {
  static std::mutex mu;
  return mu;
}
std::unordered_set<const void*>& carveout_done() {
  static std::unordered_set<const void*> done;
  return done;
}

}  // namespace

int smem_carveout_preference() { return spec().percent; }

void prefer_smem_carveout_once(const void* kernel, int percent) {
  const std::lock_guard<std::mutex> lock(carveout_mutex());
  if (!carveout_done().insert(kernel).second) return;
  if (!spec().patterns.empty()) {
    const char* name = nullptr;
    if (cudaFuncGetName(&name, kernel) != cudaSuccess || !name) return;
    bool match = false;
    for (const std::string& p : spec().patterns) match = match || std::string(name).find(p) != std::string::npos;
    if (!match) return;
  }
  WORKER_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, percent));
}

void default_smem_carveout(const void* kernel, int percent) {
  if (spec().set) return;  // the measuring switch decides (launch_maybe_pdl_shared applies it)
  prefer_smem_carveout_once(kernel, percent);
}

}  // namespace worker::gpu
