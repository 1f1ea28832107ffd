#include "quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu.h"
#include "threadpool.h"

namespace attn {

// Activation rows → 8-bit blocks: d = max|x| / 127, q = roundf(x / d), the
// same float steps as the js twin (quantizeActivations), so both multiply the
// same integers; corr: −offset × each 4 values' sum. K floats per row: cheap
// beside reading N·K weights.
static void quantize_acts(const float* x, int M, int K, int offset, int8_t* q, float* d, float* d8, int32_t* corr, int32_t* corr1) {
  const long blocks = (long)M * (K / 32);
  for (long b = 0; b < blocks; b++) {
    const float* xb = x + b * 32;
    float amax = 0.f;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(xb[j]));
    const float db = amax / 127.f;
    const float id = db != 0.f ? 1.f / db : 0.f;
    for (int j = 0; j < 32; j++) q[b * 32 + j] = (int8_t)std::roundf(xb[j] * id);
    int32_t total = 0;
    for (int l = 0; l < 8; l++) {
      const int8_t* g = q + b * 32 + 4 * l;
      corr[b * 8 + l] = -offset * (g[0] + g[1] + g[2] + g[3]);
      total += corr[b * 8 + l];
    }
    corr1[b] = total;
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

// --- The interleaved layout (quant.h) ---

static QuantRowsFn rows_fn();
static int block_bytes(int type) { return type == QUANT_Q8_0 ? 34 : 18; }

void interleave_rows16(int type, uint8_t* w, int N, int K) {
  const int BS = block_bytes(type), Q = BS - 2, blocks = K / 32;
  const long group = (long)INTERLEAVE * blocks * BS;
  std::vector<uint8_t> rows((size_t)group);
  for (long g0 = 0; g0 < (long)N * blocks * BS; g0 += group) {
    std::memcpy(rows.data(), w + g0, (size_t)group);
    for (int b = 0; b < blocks; b++) {
      uint8_t* out = w + g0 + (long)b * INTERLEAVE * BS;
      for (int r = 0; r < INTERLEAVE; r++) {
        const uint8_t* blk = rows.data() + ((long)r * blocks + b) * BS;
        std::memcpy(out + 2 * r, blk, 2);
        for (int i = 0; i < Q / 4; i++) std::memcpy(out + 32 + 64 * i + 4 * r, blk + 2 + 4 * i, 4);
      }
    }
  }
}

// Any CPU, the interleaved layout: each row gathered back into ggml's layout,
// then the portable kernel on that one row (the reference the VNNI kernel is
// tested against, and the path when the ISA is switched after interleaving).
static void rows16_generic(const QuantLinear& g, const QuantActs& a, int n0, int n1) {
  const int BS = block_bytes(g.type), blocks = g.K / 32;
  thread_local std::vector<uint8_t> row;
  thread_local std::vector<float> y;
  row.resize((size_t)blocks * BS);
  y.resize((size_t)g.M);
  for (int n = n0; n < n1; n++) {
    const int r = n % INTERLEAVE;
    for (int b = 0; b < blocks; b++) {
      const uint8_t* p = g.w + ((long)(n / INTERLEAVE) * blocks + b) * INTERLEAVE * BS;
      uint8_t* blk = row.data() + (long)b * BS;
      std::memcpy(blk, p + 2 * r, 2);
      for (int i = 0; i < (BS - 2) / 4; i++) std::memcpy(blk + 2 + 4 * i, p + 32 + 64 * i + 4 * r, 4);
    }
    QuantLinear one = g;
    one.N = 1; one.w = row.data(); one.y = y.data(); one.bias = g.bias ? g.bias + n : nullptr; one.interleave = 0;
    portable::quant_rows(one, a, 0, 1);
    for (int m = 0; m < g.M; m++) g.y[(long)m * g.N + n] = y[m];
  }
}

bool prefers_interleaved() {
  static const bool vnni = has_vnni();
  return current_isa() == Isa::Avx512 && vnni;
}

static QuantRowsFn rows_fn(const QuantLinear& g) {
  if (g.interleave) return prefers_interleaved() ? avx512::quant_rows16_vnni : rows16_generic;
  return rows_fn();
}

static QuantRowsFn rows_fn() {
  static const bool vnni = has_vnni();
  switch (current_isa()) {
    case Isa::Avx512: return vnni ? avx512::quant_rows_vnni : avx512::quant_rows;
    case Isa::Avx2: return avx2::quant_rows;
    default: return portable::quant_rows;
  }
}

const QuantActs& prepare_activations(int type, int M, int K, QuantActsBuf& buf) {
  buf.acts = QuantActs{nullptr, nullptr, nullptr, nullptr, nullptr, K / 32};
  if (type != QUANT_Q8_0 && type != QUANT_Q4_0) return buf.acts;
  const long blocks = (long)M * (K / 32);
  buf.q.resize((size_t)M * K);
  buf.d.resize((size_t)blocks);
  buf.d8.resize((size_t)blocks * 8);
  buf.corr.resize((size_t)blocks * 8);
  buf.corr1.resize((size_t)blocks);
  buf.acts = QuantActs{buf.q.data(), buf.d.data(), buf.d8.data(), buf.corr.data(), buf.corr1.data(), K / 32};
  return buf.acts;
}

void quantize_activation_blocks(int type, const float* x, long b0, long b1, QuantActsBuf& buf) {
  if ((type != QUANT_Q8_0 && type != QUANT_Q4_0) || b0 >= b1) return;
  const int offset = type == QUANT_Q8_0 ? 128 : 8;
  const float* xb = x + b0 * 32;
  int8_t* q = buf.q.data() + b0 * 32;
  float* d = buf.d.data() + b0;
  float* d8 = buf.d8.data() + b0 * 8;
  int32_t* corr = buf.corr.data() + b0 * 8;
  int32_t* corr1 = buf.corr1.data() + b0;
  if (current_isa() == Isa::Avx512) avx512::quantize_acts(xb, b1 - b0, offset, q, d, d8, corr, corr1);
  else quantize_acts(xb, 1, (int)(b1 - b0) * 32, offset, q, d, d8, corr, corr1);
}

const QuantActs& quantize_activations(int type, const float* x, int M, int K, QuantActsBuf& buf) {
  prepare_activations(type, M, K, buf);
  quantize_activation_blocks(type, x, 0, (long)M * (K / 32), buf);
  return buf.acts;
}

void linear_quantized_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1) {
  if (g.interleave && (g.N % INTERLEAVE || (g.type != QUANT_Q8_0 && g.type != QUANT_Q4_0))) return;  // checked by the binding
  if (n0 < n1) rows_fn(g)(g, a, n0, n1);
}

void linear_quantized(const QuantLinear& g) {
  thread_local QuantActsBuf buf;
  const QuantActs& a = quantize_activations(g.type, g.x, g.M, g.K, buf);
  if (g.interleave && (g.N % INTERLEAVE || (g.type != QUANT_Q8_0 && g.type != QUANT_Q4_0))) return;  // checked by the binding
  const QuantRowsFn fn = rows_fn(g);
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
