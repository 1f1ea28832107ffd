// The fused decode step of one Llama-family layer (decoder_step.h): the
// existing kernels (RMSNorm, the GEMV/quantized products, cached attention,
// SwiGLU, RoPE) on one scratch buffer, as one job for the whole thread pool.
//
// Decoding a small model is a chain of short steps (a 576×192 q4_0 product
// reads 62 KB: a few µs), so handing each product to the pool on its own —
// eight hand-offs a layer, each a lock, a wake-up and a wait — cost about as
// much as the second thread gained. Here the pool runs the layer once: every
// thread walks the same list of phases, and in each phase claims chunks of
// work (a run of weight rows of a product, a query head of the
// attention) from an atomic counter until none is left, then waits until the
// phase's last chunk is done. The short element-wise steps between products
// (RMSNorm, RoPE, the residual adds, quantizing the activations) are phases
// of one chunk: whichever thread arrives first does it while the other waits.
// Work is claimed, never assigned, so a thread that the pool starts late (or
// never: the caller may run every task itself) only finds less to do.
//
// Each product's activations are quantized once and shared (q, k and v read
// one quantized copy of the normed input; gate and up another). Rows are
// computed by the same kernels as linear_quantized / gemv, whatever the
// thread count, so results do not depend on it.
#include "decoder_step.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "gemm.h"
#include "gemv.h"
#include "kernels.h"
#include "quant.h"
#include "threadpool.h"
#include "vec.h"

namespace attn {

namespace {

// Weight bytes of one chunk of rows, in multiples of 16 rows (the interleaved layout's
// groups). Measured on SmolLM2-135M q4_0 at 2 threads: 16 KB chunks ran 4.9 ms a token,
// 64 KB 3.7–3.8, 128 KB 3.5–3.8 (each claim moves a cache line between the cores).
constexpr long CHUNK_BYTES = 64 << 10;

long row_bytes(const StepLinear& l) {
  switch (l.kind) {
    case STEP_F32: return 4L * l.K;
    case STEP_INT8: return l.K;
    case QUANT_Q8_0: return l.K / 32 * 34L;
    case QUANT_Q4_0: return l.K / 32 * 18L;
    case QUANT_Q4_K: return l.K / 256 * 144L;
    default: return l.K / 256 * 210L;  // q6_k
  }
}

int chunk_rows(const StepLinear& l) {
  const long rows = std::max(1L, CHUNK_BYTES / row_bytes(l));
  return (int)std::max(16L, (rows + 15) / 16 * 16);
}

bool quantized(const StepLinear& l) { return l.kind == QUANT_Q8_0 || l.kind == QUANT_Q4_0; }

// Rows [n0, n1) of y [N] = x [K]·Wᵀ + bias on this thread; a: x quantized for W's type (q8_0 / q4_0).
void linear_rows(const StepLinear& l, const float* x, const QuantActs& a, float* y, int n0, int n1) {
  if (l.kind == STEP_F32) {
    const float* w = (const float*)l.w + (long)n0 * l.K;
    gemv_serial(Gemv<float>{1, n1 - n0, l.K, x, l.K, w, l.K, nullptr, l.bias ? l.bias + n0 : nullptr, y + n0, l.N, 1.f, false});
  } else if (l.kind == STEP_INT8) {
    const int8_t* w = (const int8_t*)l.w + (long)n0 * l.K;
    gemv_serial(Gemv<int8_t>{1, n1 - n0, l.K, x, l.K, w, l.K, l.scale + n0, l.bias ? l.bias + n0 : nullptr, y + n0, l.N, 1.f, false});
  } else {
    QuantLinear g{l.kind, 1, l.N, l.K, x, (const uint8_t*)l.w, l.bias, y};
    g.interleave = l.interleave;
    linear_quantized_rows(g, a, n0, n1);
  }
}

// The activations of the products that read one input vector, quantized once per
// weight type that needs it (q4_0 and q8_0 differ in their offset correction).
struct SharedActs {
  QuantActsBuf buf[2];  // [0]: q4_0, [1]: q8_0
  void quantize(const float* x, int K, std::initializer_list<const StepLinear*> ls) {
    bool done[2] = {false, false};
    for (const StepLinear* l : ls) {
      if (!quantized(*l)) continue;
      const int i = l->kind == QUANT_Q8_0;
      if (!done[i]) quantize_activations(l->kind, x, 1, K, buf[i]);
      done[i] = true;
    }
  }
  const QuantActs& of(const StepLinear& l) const { return buf[l.kind == QUANT_Q8_0].acts; }
};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// The phases of one layer step, shared by the threads that run it.
constexpr int MAX_PHASES = 16;
struct Phases {
  std::atomic<int> next[MAX_PHASES];
  std::atomic<int> done[MAX_PHASES];
  Phases() {
    for (int i = 0; i < MAX_PHASES; i++) { next[i].store(0, std::memory_order_relaxed); done[i].store(0, std::memory_order_relaxed); }
  }
  // Claim chunks 0 … chunks − 1 of phase p until none is left (fn(chunk)), then wait for the
  // chunks other threads claimed. Their writes are visible after: each chunk's done is a release.
  template <class F>
  void run(int p, int chunks, const F& fn) {
    for (int c; (c = next[p].fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      fn(c);
      done[p].fetch_add(1, std::memory_order_release);
    }
    for (long spin = 0; done[p].load(std::memory_order_acquire) < chunks; spin++) {
      if (spin < 20000) cpu_relax();
      else std::this_thread::yield();  // the thread holding the chunk was descheduled
    }
  }
};

// The products of one phase, their rows in chunks: chunk c is rows [n0, n1) of product i.
struct RowChunks {
  struct Part { const StepLinear* l; int rows, chunks; };
  Part parts[3];
  int n = 0, total = 0;
  RowChunks(std::initializer_list<const StepLinear*> ls) {
    for (const StepLinear* l : ls) {
      const int rows = chunk_rows(*l);
      parts[n++] = Part{l, rows, (l->N + rows - 1) / rows};
      total += parts[n - 1].chunks;
    }
  }
  // Which product chunk c belongs to, and its rows.
  int find(int c, int& n0, int& n1) const {
    int i = 0;
    while (c >= parts[i].chunks) c -= parts[i++].chunks;
    n0 = c * parts[i].rows;
    n1 = std::min(parts[i].l->N, n0 + parts[i].rows);
    return i;
  }
};

}  // namespace

long decoder_step_scratch_floats(const DecoderLayerStep& s) {
  const long q = (long)s.H * s.D, kv = (long)s.Hkv * s.D;
  // h, q, k, v, attention out, gate, up, plus one float of RMSNorm's rstd
  return s.C + q + 2 * kv + q + 2L * s.F + 1;
}

void decoder_layer_step(const DecoderLayerStep& s, float* x, float* kc, float* vc, int cap, int past, int start, const float* cos,
                        const float* sin, float* scratch) {
  const long qw = (long)s.H * s.D, kvw = (long)s.Hkv * s.D;
  float* h = scratch;
  float* q = h + s.C;
  float* k = q + qw;
  float* v = k + kvw;
  float* att = v + kvw;
  float* gate = att + qw;
  float* up = gate + s.F;
  float* rstd = up + s.F;

  // The caller's buffers, shared by reference with the pool's threads (phases of one chunk run on any of them).
  // The element-wise steps call the vec kernels directly: kernels.h's would hand large ones to the pool, which is busy running this.
  thread_local SharedActs in_acts, att_acts, mlp_acts, down_acts;
  SharedActs& a_in = in_acts;
  SharedActs& a_att = att_acts;
  SharedActs& a_mlp = mlp_acts;
  SharedActs& a_down = down_acts;
  const KvDims kd{1, 1, past, cap, s.H, s.Hkv, s.D, 1.f / __builtin_sqrtf((float)s.D)};
  const int threads = pool().size();
  // Attention: one query head per chunk when threads share it; else all heads (≤ 64) at once.
  const int head_chunk = threads > 1 ? 1 : std::min(s.H, 64);
  const int head_chunks = (s.H + head_chunk - 1) / head_chunk;
  const RowChunks qkv{&s.q, &s.k, &s.v}, o{&s.o}, mlp{&s.gate, &s.up}, down{&s.down};
  Phases ph;

  auto layer = [&]() {
    // Attention block: x += o_proj(attend(rope(q), cache ∪ rope(k), cache ∪ v)).
    ph.run(0, 1, [&](int) {
      vec().rmsnorm_forward(x, s.input_norm, h, rstd, 0, 1, s.C, s.eps);
      a_in.quantize(h, s.C, {&s.q, &s.k, &s.v});
    });
    float* qkv_out[3] = {q, k, v};
    ph.run(1, qkv.total, [&](int c) {
      int n0, n1;
      const int i = qkv.find(c, n0, n1);
      linear_rows(*qkv.parts[i].l, h, a_in.of(*qkv.parts[i].l), qkv_out[i], n0, n1);
    });
    ph.run(2, 1, [&](int) {
      rope(q, q, cos, sin, 1, 1, s.H, s.D, s.rope_half, false, 1, false);
      rope(k, k, cos, sin, 1, 1, s.Hkv, s.D, s.rope_half, false, 1, false);
      std::memcpy(kc + (long)past * kvw, k, kvw * sizeof(float));
      std::memcpy(vc + (long)past * kvw, v, kvw * sizeof(float));
    });
    ph.run(3, head_chunks, [&](int c) {
      attention_decode_heads(q, kc, vc, att, start, kd, c * head_chunk, std::min(s.H, (c + 1) * head_chunk));
    });
    ph.run(4, 1, [&](int) { a_att.quantize(att, (int)qw, {&s.o}); });
    ph.run(5, o.total, [&](int c) {
      int n0, n1;
      o.find(c, n0, n1);
      linear_rows(s.o, att, a_att.of(s.o), h, n0, n1);  // h is free again: o_proj's output
    });
    // MLP block: x += down(silu(gate(n)) · up(n)), n = RMSNorm(x).
    ph.run(6, 1, [&](int) {
      vec().add(x, h, x, 0, s.C);
      vec().rmsnorm_forward(x, s.post_norm, h, rstd, 0, 1, s.C, s.eps);
      a_mlp.quantize(h, s.C, {&s.gate, &s.up});
    });
    ph.run(7, mlp.total, [&](int c) {
      int n0, n1;
      const int i = mlp.find(c, n0, n1);
      linear_rows(*mlp.parts[i].l, h, a_mlp.of(*mlp.parts[i].l), i == 0 ? gate : up, n0, n1);
    });
    ph.run(8, 1, [&](int) {
      vec().swiglu_forward(gate, up, gate, 0, s.F);
      a_down.quantize(gate, s.F, {&s.down});
    });
    ph.run(9, down.total, [&](int c) {
      int n0, n1;
      down.find(c, n0, n1);
      linear_rows(s.down, gate, a_down.of(s.down), h, n0, n1);
    });
    ph.run(10, 1, [&](int) { vec().add(x, h, x, 0, s.C); });
  };
  if (threads == 1) return layer();
  pool().run(threads, [&](int, int) { layer(); });
}

}  // namespace attn
