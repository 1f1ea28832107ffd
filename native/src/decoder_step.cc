// The fused decode step of one Llama-family layer (decoder_step.h): the
// existing kernels (RMSNorm, the GEMV/quantized products, cached attention,
// SwiGLU, RoPE) on one scratch buffer, as one job for the whole thread pool.
//
// Decoding is a stream of weight reads: a token reads every weight once, so
// it runs at the memory bandwidth when each thread streams its own contiguous
// slice of each matrix, as the streaming-read measure does (stream_read.cc),
// and no thread waits on another more often than the data flow forces. So
// the pool runs the layer once with one task per thread, and thread t of T
// owns a static, contiguous range of rows of every product, balanced by
// bytes (whole groups of 16 rows: the interleaved layout's unit). Between
// products the threads meet at four barriers a layer (spin, then yield), the
// ones the data flow needs:
//
//   every thread: h = RMSNorm(x), quantized, on its own copy (C floats: cheap)
//   q, k, v rows of this thread                        | barrier (attention needs all of k, v)
//   its KV heads: RoPE of q and k, cache write, attention, its blocks of the
//   output quantized                                   | barrier (o needs all of it)
//   its rows of o, added into x                        | barrier (the norm needs all of x)
//   every thread: h = RMSNorm(x), quantized, its own copy
//   its rows of gate and up (the same range of F), SwiGLU, its blocks of
//   the result quantized                               | barrier (down needs all of it)
//   its rows of down, added into x                     | end of the pool's job
//
// Rows are computed by the same kernels as linear_quantized / gemv, and each
// 32-value block of activations is quantized on its own, so results do not
// depend on the thread count or on the split.
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

bool quantized(const StepLinear& l) { return l.kind == QUANT_Q8_0 || l.kind == QUANT_Q4_0; }

// Rows [n0, n1) of y [N] = x [K]·Wᵀ + bias on this thread; a: x quantized for W's type (q8_0 / q4_0).
void linear_rows(const StepLinear& l, const float* x, const QuantActs& a, float* y, int n0, int n1) {
  if (n0 >= n1) return;
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
  void prepare(int K, std::initializer_list<const StepLinear*> ls) {
    for (const StepLinear* l : ls)
      if (quantized(*l)) prepare_activations(l->kind, 1, K, buf[l->kind == QUANT_Q8_0]);
  }
  // Blocks b0 … b1 − 1 of x, for each type that ls need (prepare first).
  void quantize(const float* x, long b0, long b1, std::initializer_list<const StepLinear*> ls) {
    bool done[2] = {false, false};
    for (const StepLinear* l : ls) {
      if (!quantized(*l)) continue;
      const int i = l->kind == QUANT_Q8_0;
      if (!done[i]) quantize_activation_blocks(l->kind, x, b0, b1, buf[i]);
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

// The barriers of one layer step: barrier i is passed when all T threads arrived at it.
// Each arrival is a release, each wait an acquire, so writes before it are visible after.
constexpr int MAX_BARRIERS = 8;
struct Barriers {
  std::atomic<int> arrived[MAX_BARRIERS];
  int threads;
  explicit Barriers(int t) : threads(t) {
    for (auto& a : arrived) a.store(0, std::memory_order_relaxed);
  }
  void wait(int i) {
    if (threads == 1) return;
    arrived[i].fetch_add(1, std::memory_order_acq_rel);
    for (long spin = 0; arrived[i].load(std::memory_order_acquire) < threads; spin++) {
      if (spin < 20000) cpu_relax();
      else std::this_thread::yield();  // a thread that has not arrived was descheduled
    }
  }
};

// Thread t's share of [0, n) in units of `unit` (the last unit may be short): boundaries
// at the nearest unit to n·t / T, so the T ranges cover [0, n) once.
inline int share_bound(long n, int unit, int t, int T) {
  const long at = (n * t + (long)T / 2) / T;
  return (int)std::min(n, (at + unit / 2) / unit * unit);
}

// Thread t's rows of each of the products of one phase, split by weight bytes as if the
// products were one matrix (q, k, v: thread 0 streams the first part of that matrix, …).
struct RowShare {
  int n0[3], n1[3];
  RowShare(std::initializer_list<const StepLinear*> ls, int t, int T) {
    long total = 0;
    for (const StepLinear* l : ls) total += (long)l->N * row_bytes(*l);
    const long lo = total * t / T, hi = total * (t + 1) / T;
    long base = 0;
    int i = 0;
    for (const StepLinear* l : ls) {
      const long rb = row_bytes(*l);
      auto row = [&](long at) {  // the row of this product at byte `at` of the whole, in units of 16
        const long r = std::max(0L, at - base) / rb;
        return (int)std::min<long>(l->N, (r + 8) / 16 * 16);
      };
      n0[i] = t == 0 ? 0 : row(lo);
      n1[i] = t == T - 1 ? l->N : row(hi);
      base += (long)l->N * rb;
      i++;
    }
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

  // The outputs quantized by every thread in part are the caller's buffers, shared by reference.
  // The element-wise steps call the vec kernels directly: kernels.h's would hand large ones to the pool, which is busy running this.
  thread_local SharedActs att_acts, down_acts;
  SharedActs& a_att = att_acts;
  SharedActs& a_down = down_acts;
  a_att.prepare((int)qw, {&s.o});
  a_down.prepare(s.F, {&s.down});
  const KvDims kd{1, 1, past, cap, s.H, s.Hkv, s.D, 1.f / __builtin_sqrtf((float)s.D)};
  const int T = pool().size();
  const int group = s.H / s.Hkv;
  // Each thread quantizes the attention output of its own heads when heads are whole blocks; else one thread all of it.
  const bool att_split = s.D % 32 == 0;
  const bool down_split = s.F % 32 == 0;
  Barriers bar(T);

  auto layer = [&](int t) {
    // This thread's own normed input and its quantized copies (each thread computes the same values).
    thread_local std::vector<float> hl, rstd;
    thread_local SharedActs in_acts, mlp_acts;
    hl.resize(s.C);
    rstd.resize(1);
    // Attention block: x += o_proj(attend(rope(q), cache ∪ rope(k), cache ∪ v)).
    vec().rmsnorm_forward(x, s.input_norm, hl.data(), rstd.data(), 0, 1, s.C, s.eps);
    in_acts.prepare(s.C, {&s.q, &s.k, &s.v});
    in_acts.quantize(hl.data(), 0, s.C / 32, {&s.q, &s.k, &s.v});
    {
      const RowShare r({&s.q, &s.k, &s.v}, t, T);
      linear_rows(s.q, hl.data(), in_acts.of(s.q), q, r.n0[0], r.n1[0]);
      linear_rows(s.k, hl.data(), in_acts.of(s.k), k, r.n0[1], r.n1[1]);
      linear_rows(s.v, hl.data(), in_acts.of(s.v), v, r.n0[2], r.n1[2]);
    }
    bar.wait(0);
    {
      // This thread's KV heads g0 … g1 − 1 and their query heads.
      const int g0 = share_bound(s.Hkv, 1, t, T), g1 = share_bound(s.Hkv, 1, t + 1, T);
      const int h0 = g0 * group, h1 = g1 * group;
      if (g0 < g1) {
        rope(q + (long)h0 * s.D, q + (long)h0 * s.D, cos, sin, 1, 1, h1 - h0, s.D, s.rope_half, false, 1, false);
        rope(k + (long)g0 * s.D, k + (long)g0 * s.D, cos, sin, 1, 1, g1 - g0, s.D, s.rope_half, false, 1, false);
        std::memcpy(kc + (long)past * kvw + (long)g0 * s.D, k + (long)g0 * s.D, (size_t)(g1 - g0) * s.D * sizeof(float));
        std::memcpy(vc + (long)past * kvw + (long)g0 * s.D, v + (long)g0 * s.D, (size_t)(g1 - g0) * s.D * sizeof(float));
        for (int a = h0; a < h1; a += 64) attention_decode_heads(q, kc, vc, att, start, kd, a, std::min(h1, a + 64));
        if (att_split) a_att.quantize(att, (long)h0 * s.D / 32, (long)h1 * s.D / 32, {&s.o});
      }
    }
    bar.wait(1);
    if (!att_split) {
      if (t == 0) a_att.quantize(att, 0, qw / 32, {&s.o});
      bar.wait(2);
    }
    {
      const RowShare r({&s.o}, t, T);
      linear_rows(s.o, att, a_att.of(s.o), h, r.n0[0], r.n1[0]);  // h is free: o_proj's output
      vec().add(x + r.n0[0], h + r.n0[0], x + r.n0[0], 0, r.n1[0] - r.n0[0]);
    }
    bar.wait(3);
    // MLP block: x += down(silu(gate(n)) · up(n)), n = RMSNorm(x).
    vec().rmsnorm_forward(x, s.post_norm, hl.data(), rstd.data(), 0, 1, s.C, s.eps);
    mlp_acts.prepare(s.C, {&s.gate, &s.up});
    mlp_acts.quantize(hl.data(), 0, s.C / 32, {&s.gate, &s.up});
    {
      // The same rows of gate and up, so that this thread's SwiGLU needs no other's.
      const int f0 = share_bound(s.F, 32, t, T), f1 = share_bound(s.F, 32, t + 1, T);
      linear_rows(s.gate, hl.data(), mlp_acts.of(s.gate), gate, f0, f1);
      linear_rows(s.up, hl.data(), mlp_acts.of(s.up), up, f0, f1);
      if (f0 < f1) vec().swiglu_forward(gate + f0, up + f0, gate + f0, 0, f1 - f0);
      if (down_split) a_down.quantize(gate, f0 / 32, f1 / 32, {&s.down});
    }
    bar.wait(4);
    if (!down_split) {
      if (t == 0) a_down.quantize(gate, 0, s.F / 32, {&s.down});
      bar.wait(5);
    }
    {
      const RowShare r({&s.down}, t, T);
      linear_rows(s.down, gate, a_down.of(s.down), h, r.n0[0], r.n1[0]);
      vec().add(x + r.n0[0], h + r.n0[0], x + r.n0[0], 0, r.n1[0] - r.n0[0]);
    }
  };
  if (T == 1) return layer(0);
  // One task per thread: each task waits at the barriers for all others, so each needs a thread of its own,
  // which the pool gives it (a thread takes another task only after finishing one).
  pool().run(T, [&](int task, int) { layer(task); });
}

}  // namespace attn
