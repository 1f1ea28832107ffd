// Fused causal attention, flash-attention style. For each (batch, head) and
// each block of BR query rows, the scores against all keys that block may see
// are computed with the GEMM's register tile (gemm_small, which reads the
// head's rows in place), turned into softmax weights in place, and multiplied
// into the output. Only a BR×T tile exists at a time —
// never the T×T matrix — and the backward pass recomputes the weights from
// each row's saved log-sum-exp instead of storing them.
#include <algorithm>
#include <cmath>
#include <vector>

#include "gemm.h"
#include "kernels.h"
#include "vec.h"
#include "threadpool.h"

namespace attn {

constexpr int BR = 64;  // query rows per block

// One (b, h) slice of a [B, T, ·] tensor: rows of length D, row stride ld.
struct Head {
  long base;
  long ld;
  const float* row(const float* t, int i) const { return t + base + (long)i * ld; }
  float* row(float* t, int i) const { return t + base + (long)i * ld; }
};

// Head `task` (= b·H + h) of q, k, v and their gradients (row stride d.stride: they may
// sit side by side in one [B, T, 3C] array) and of out and dout (row stride C).
static Head inputs(const AttnDims& d, int task) {
  const long ld = d.stride ? d.stride : (long)d.H * d.D;
  return Head{(long)(task / d.H) * d.T * ld + (long)(task % d.H) * d.D, ld};
}
static Head outputs(const AttnDims& d, int task) {
  const long C = (long)d.H * d.D;
  return Head{(long)(task / d.H) * d.T * C + (long)(task % d.H) * d.D, C};
}

// C[m×n] (ldc) = alpha·op(A)·op(B) (+C), single-threaded (we are inside a pool task).
static void mm(bool tA, bool tB, int m, int n, int k, const float* a, long lda, const float* b, long ldb,
               float* c, long ldc, float alpha, bool acc) {
  Gemm g{tA, tB, m, n, k, a, lda, b, ldb, c, ldc, alpha, acc, 1, 0, 0, 0, nullptr};
  gemm_serial(g);
}

// One head's keys (or values), rows 0 … T − 1, transposed to [D, T]: q·kᵀ then reads
// kᵀ by rows, as gemm_small wants its right-hand operand. Once per head and pass.
static void transpose_head(const Head& in, const float* t, int T, int D, std::vector<float>& out) {
  out.resize((size_t)D * T);
  for (int j = 0; j < T; j++) {
    const float* r = in.row(t, j);
    for (int e = 0; e < D; e++) out[(size_t)e * T + j] = r[e];
  }
}

// The tiles of a head are small and already in cache, so their products go to
// gemm_small, which reads operands in place instead of packing them.
static void forward_head(const float* q, const float* k, const float* v, float* out, float* lse, const AttnDims& d, int task,
                         std::vector<float>& s, std::vector<float>& kt) {
  const Head in = inputs(d, task), io = outputs(d, task);
  float* L = lse + (long)task * d.T;
  transpose_head(in, k, d.T, d.D, kt);
  for (int i0 = 0; i0 < d.T; i0 += BR) {
    const int rows = std::min(BR, d.T - i0);
    const int keys = d.causal ? i0 + rows : d.T;  // a causal block sees keys up to its last row
    s.resize((size_t)rows * keys);
    gemm_small(rows, keys, d.D, in.row(q, i0), in.ld, 1, kt.data(), d.T, s.data(), keys, d.scale, false);  // S = Q·Kᵀ·scale
    vec().softmax_tile(s.data(), rows, keys, i0, d.causal, L + i0);                                        // P = softmax(S)
    gemm_small(rows, d.D, keys, s.data(), keys, 1, in.row(v, 0), in.ld, io.row(out, i0), io.ld, 1.f, false);  // O = P·V
  }
}

void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnDims& d) {
  pool().run(d.B * d.H, [&](int task, int) {
    thread_local std::vector<float> s, kt;
    forward_head(q, k, v, out, lse, d, task, s, kt);
  });
}

struct BackwardScratch { std::vector<float> p, dp, kt, vt; };

static void backward_head(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                          float* dq, float* dk, float* dv, const AttnDims& d, bool acc, int task, BackwardScratch& w) {
  const Head in = inputs(d, task), io = outputs(d, task);
  const float* L = lse + (long)task * d.T;
  if (!acc)  // a first contribution: this head's slices of dq, dk, dv start from zero
    for (int i = 0; i < d.T; i++)
      for (float* g : {in.row(dq, i), in.row(dk, i), in.row(dv, i)}) std::fill(g, g + d.D, 0.f);
  transpose_head(in, k, d.T, d.D, w.kt);
  transpose_head(in, v, d.T, d.D, w.vt);
  for (int i0 = 0; i0 < d.T; i0 += BR) {
    const int rows = std::min(BR, d.T - i0);
    const int keys = d.causal ? i0 + rows : d.T;
    w.p.resize((size_t)rows * keys);
    w.dp.resize((size_t)rows * keys);
    float* p = w.p.data();
    float* dp = w.dp.data();
    // P: the weights, recomputed from the scores and the saved log-sum-exp.
    gemm_small(rows, keys, d.D, in.row(q, i0), in.ld, 1, w.kt.data(), d.T, p, keys, d.scale, false);
    vec().exp_rows(p, rows, keys, i0, d.causal, L + i0);
    // dP = dO·Vᵀ, then dS = P ⊙ (dP − Σ_j P⊙dP).
    gemm_small(rows, keys, d.D, io.row(dout, i0), io.ld, 1, w.vt.data(), d.T, dp, keys, 1.f, false);
    vec().softmax_tile_backward(p, dp, rows, keys, io.row(dout, i0), io.row(out, i0), io.ld, d.D);
    // dQ += dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO (a transposed tile is read with swapped strides).
    gemm_small(rows, d.D, keys, dp, keys, 1, in.row(k, 0), in.ld, in.row(dq, i0), in.ld, d.scale, true);
    gemm_small(keys, d.D, rows, dp, 1, keys, in.row(q, i0), in.ld, in.row(dk, 0), in.ld, d.scale, true);
    gemm_small(keys, d.D, rows, p, 1, keys, io.row(dout, i0), io.ld, in.row(dv, 0), in.ld, 1.f, true);
  }
}

void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                        float* dq, float* dk, float* dv, const AttnDims& d, bool acc) {
  // Each (batch, head) touches only its own slices of dq, dk and dv: no races between tasks.
  pool().run(d.B * d.H, [&](int task, int) {
    thread_local BackwardScratch w;
    backward_head(q, k, v, out, lse, dout, dq, dk, dv, d, acc, task, w);
  });
}

// Attention of new queries against a KV cache (generation). q, out: [B, Tq, H·D];
// kc, vc: [B, cap, H·D]. Query t of row b sits at cache slot past + t and sees
// slots start[b] … past + t: left padding before start[b] is invisible. The
// same block structure as forward_head, with key 0 at slot start[b].
static void cached_head(const float* q, const float* kc, const float* vc, float* out, const int32_t* start, const KvDims& d,
                        int task, std::vector<float>& s) {
  const int b = task / d.H, hd = task % d.H, C = d.H * d.D;
  const long qbase = (long)b * d.Tq * C + (long)hd * d.D;
  const int s0 = std::min(start[b], d.past + d.Tq);
  const long kbase = ((long)b * d.cap + s0) * C + (long)hd * d.D;
  for (int i0 = 0; i0 < d.Tq; i0 += BR) {
    const int rows = std::min(BR, d.Tq - i0);
    const int shift = d.past + i0 - s0;                  // query row r sees relative keys j ≤ shift + r
    const int keys = std::max(0, shift + rows);
    float* o0 = out + qbase + (long)i0 * C;
    if (keys == 0) {
      for (int r = 0; r < rows; r++) std::fill(o0 + (long)r * C, o0 + (long)r * C + d.D, 0.f);
      continue;
    }
    s.resize((size_t)rows * keys);
    mm(false, true, rows, keys, d.D, q + qbase + (long)i0 * C, C, kc + kbase, C, s.data(), keys, d.scale, false);
    float mx[BR];
    for (int r = 0; r < rows; r++) {
      const int visible = std::min(keys, shift + r + 1);
      float m = visible > 0 ? -INFINITY : 0.f;
      for (int j = 0; j < visible; j++) m = std::max(m, s[(size_t)r * keys + j]);
      mx[r] = m;
    }
    if (shift >= 0) vec().exp_rows(s.data(), rows, keys, shift, true, mx);
    else
      for (int r = 0; r < rows; r++) {  // rows before start: only some see any key
        const int visible = std::max(0, std::min(keys, shift + r + 1));
        vec().exp_rows(s.data() + (size_t)r * keys, 1, keys, visible - 1, true, mx + r);
      }
    mm(false, false, rows, d.D, keys, s.data(), keys, vc + kbase, C, o0, C, 1.f, false);
    for (int r = 0; r < rows; r++) {
      double sum = 0;
      for (int j = 0; j < keys; j++) sum += s[(size_t)r * keys + j];
      const float inv = sum > 0 ? (float)(1.0 / sum) : 0.f;
      float* o = o0 + (long)r * C;
      for (int e = 0; e < d.D; e++) o[e] *= inv;
    }
  }
}

// Decoding (one new query per row): plain loops over the cached keys, which
// for a single query are cheaper than setting up GEMM tiles. Heads h0 … h1 − 1
// of row b go together, key by key: each cached key and value row is then read
// as one contiguous run (a row holds every head side by side) instead of a
// 256-byte piece per head at a 3 KB stride, which the prefetchers do not follow.
static void cached_query(const float* q, const float* kc, const float* vc, float* out, const int32_t* start, const KvDims& d,
                         int b, int h0, int h1, std::vector<float>& w) {
  const long C = (long)d.H * d.D;
  const int first = std::max(0, start[b]), last = d.past;  // Tq == 1: the query sits at slot past
  const int n = last - first + 1, D = d.D;
  const float* qr = q + b * C;
  float* o = out + b * C;
  std::fill(o + h0 * D, o + h1 * D, 0.f);
  if (n <= 0) return;
  w.resize((size_t)(h1 - h0) * n);
  for (int j = 0; j < n; j++) {
    const float* kr = kc + ((long)b * d.cap + first + j) * C;
    for (int h = h0; h < h1; h++) {
      float s = 0.f;
      // Without the pragma the sum is one serial chain of adds (IEEE order); with it
      // the compiler keeps several partial sums in vector lanes (4–8× faster at D = 64).
#pragma omp simd reduction(+ : s)
      for (int e = 0; e < D; e++) s += qr[h * D + e] * kr[h * D + e];
      w[(size_t)(h - h0) * n + j] = s * d.scale;
    }
  }
  float inv[64];  // heads per task (at most H; checked by the caller)
  for (int h = h0; h < h1; h++) {
    float* wh = w.data() + (size_t)(h - h0) * n;
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = std::max(mx, wh[j]);
    vec().exp_rows(wh, 1, n, 0, false, &mx);  // the same exp as the other attention paths
    double sum = 0;
    for (int j = 0; j < n; j++) sum += wh[j];
    inv[h - h0] = (float)(1.0 / sum);
  }
  for (int j = 0; j < n; j++) {
    const float* vr = vc + ((long)b * d.cap + first + j) * C;
    for (int h = h0; h < h1; h++) {
      const float p = w[(size_t)(h - h0) * n + j] * inv[h - h0];
      float* oh = o + h * D;
      const float* vh = vr + h * D;
#pragma omp simd
      for (int e = 0; e < D; e++) oh[e] += p * vh[e];
    }
  }
}

// Heads per decode task: all of a row's when there are rows enough to share the
// threads, else groups of at most 64 (inv[] above) splitting the heads evenly.
static int head_groups(int rows, int H) {
  const int threads = pool().size();
  int g = rows >= threads ? 1 : std::min(H, (threads + rows - 1) / rows);
  while ((H + g - 1) / g > 64) g++;
  return g;
}

void attention_cached(const float* q, const float* kc, const float* vc, float* out, const int32_t* start, const KvDims& d) {
  if (d.Tq == 1) {
    const double work = (double)d.B * d.H * (d.past + 1) * d.D;
    // Each step reads every cached key and value (8·work bytes) from memory, where
    // the cache rarely stays: past ~1 MB two threads stream it faster than one.
    const int g = work < 1 << 17 ? 1 : head_groups(d.B, d.H), per = (d.H + g - 1) / g;
    auto task = [&](int t, int) {
      thread_local std::vector<float> w;
      const int h0 = (t % g) * per;
      cached_query(q, kc, vc, out, start, d, t / g, h0, std::min(d.H, h0 + per), w);
    };
    if (work < 1 << 17) for (int t = 0; t < d.B * g; t++) task(t, 0);
    else pool().run(d.B * g, task);
    return;
  }
  const double work = (double)d.B * d.H * d.Tq * (d.past + d.Tq) * d.D;
  auto task = [&](int t, int) {
    thread_local std::vector<float> s;
    cached_head(q, kc, vc, out, start, d, t, s);
  };
  // Decoding a small model: waking the pool costs more than the work.
  if (work < 1 << 18) for (int t = 0; t < d.B * d.H; t++) task(t, 0);
  else pool().run(d.B * d.H, task);
}

void attention_cached_ragged(const float* q, float* out, const RaggedSeq* seqs, int S, int H, int D, float scale) {
  const long C = (long)H * D;
  double work = 0;
  for (int i = 0; i < S; i++) work += (double)H * seqs[i].Tq * (seqs[i].past + seqs[i].Tq) * D;
  // Prompts (Tq > 1) go head by head; a decoding sequence's heads go in groups (see cached_query).
  const int g = work < 1 << 17 ? 1 : head_groups(S, H), per = (H + g - 1) / g;
  auto task = [&](int t, int) {
    const RaggedSeq& s = seqs[t / H];
    const int part = t % H;
    const KvDims d{1, s.Tq, s.past, s.cap, H, D, scale};
    const int32_t start = s.start;
    const float* qs = q + s.offset * C;
    float* os = out + s.offset * C;
    thread_local std::vector<float> scratch;
    if (s.Tq > 1) return cached_head(qs, s.k, s.v, os, &start, d, part, scratch);
    if (part < g) cached_query(qs, s.k, s.v, os, &start, d, 0, part * per, std::min(H, (part + 1) * per), scratch);
  };
  if (work < 1 << 17) for (int t = 0; t < S * H; t++) task(t, 0);
  else pool().run(S * H, task);
}

}  // namespace attn
