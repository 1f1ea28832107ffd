#include "quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu.h"
#include "threadpool.h"

namespace attn {

// Activation rows → 8-bit blocks: d = max|x| / 127, q = roundf(x / d), the
// same float steps as the js twin (quantizeActivations), so both multiply the
// same integers; corr: −offset × each 4 values' sum. K floats per row: cheap
// beside reading N·K weights.
static void quantize_acts(const float* x, int M, int K, int offset, int8_t* q, float* d, float* d8, int32_t* corr) {
  const long blocks = (long)M * (K / 32);
  for (long b = 0; b < blocks; b++) {
    const float* xb = x + b * 32;
    float amax = 0.f;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(xb[j]));
    const float db = amax / 127.f;
    const float id = db != 0.f ? 1.f / db : 0.f;
    for (int j = 0; j < 32; j++) q[b * 32 + j] = (int8_t)std::roundf(xb[j] * id);
    for (int l = 0; l < 8; l++) {
      const int8_t* g = q + b * 32 + 4 * l;
      corr[b * 8 + l] = -offset * (g[0] + g[1] + g[2] + g[3]);
    }
    d[b] = db;
    for (int l = 0; l < 8; l++) d8[b * 8 + l] = db;
  }
}

static bool has_vnni() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

static QuantRowsFn rows_fn() {
  static const bool vnni = has_vnni();
  switch (current_isa()) {
    case Isa::Avx512: return vnni ? avx512::quant_rows_vnni : avx512::quant_rows;
    case Isa::Avx2: return avx2::quant_rows;
    default: return portable::quant_rows;
  }
}

void linear_quantized(const QuantLinear& g) {
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> d, d8;
  thread_local std::vector<int32_t> s;
  QuantActs a{nullptr, nullptr, nullptr, nullptr, g.K / 32};
  if (g.type == QUANT_Q8_0 || g.type == QUANT_Q4_0) {
    q.resize((size_t)g.M * g.K);
    d.resize((size_t)g.M * a.blocks);
    d8.resize((size_t)g.M * a.blocks * 8);
    s.resize((size_t)g.M * a.blocks * 8);
    quantize_acts(g.x, g.M, g.K, g.type == QUANT_Q8_0 ? 128 : 8, q.data(), d.data(), d8.data(), s.data());
    a.q = q.data(); a.d = d.data(); a.d8 = d8.data(); a.corr = s.data();
  }
  const QuantRowsFn fn = rows_fn();
  // Small products take less time than waking a pool thread (as in gemv_impl.inc).
  const int threads = (double)g.N * g.K * std::max(1, g.M / 4) < (1 << 18) ? 1 : pool().size();
  if (threads == 1) return fn(g, a, 0, g.N);
  // Chunks of 16 weight rows, several per thread to balance uneven progress.
  const int tasks = std::min(threads * 4, (g.N + 15) / 16);
  const int per = ((g.N + tasks - 1) / tasks + 15) / 16 * 16;
  pool().run(tasks, [&](int task, int) {
    const int n0 = task * per, n1 = std::min(g.N, n0 + per);
    if (n0 < n1) fn(g, a, n0, n1);
  });
}

}  // namespace attn
