// Fused attention, flash-attention style. For each (batch, key/value head),
// each query head that reads it, and each block of TILE_ROWS query rows, the
// scores against all keys that block may see are computed with the GEMM's
// register tile (gemm_small, which reads the heads' rows in place), turned
// into softmax weights in place, and multiplied into the output. Only a
// TILE_ROWS×Tk tile exists at a time — never the Tq×Tk matrix — and the
// backward pass recomputes the weights from each row's saved log-sum-exp
// instead of storing them. Dropout on the weights is recomputed the same way,
// from the counter-based hash (drop_bits.h), never stored.
//
// The plain-loop reference is src/backend/js/attention.ts; tests compare the two.
#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "drop_bits.h"
#include "gemm.h"
#include "kernels.h"
#include "vec.h"
#include "threadpool.h"

namespace attn {

// Query rows per tile. Not measured: the value the fused kernel was written with (commit
// a2a301d, which records no sweep). The reasoning: a tile of scores is TILE_ROWS×Tk floats
// (256 KB at Tk = 1024), which should stay in L2 beside the head's transposed keys.
constexpr int TILE_ROWS = 64;
// Decode attention (one new query per row) runs on the pool above this many
// multiply-adds (B·H·positions·D), i.e. past ~1 MB of cached keys and values read per
// step: measured in commit bb80163 (decode bench, 124M model): below it waking the
// pool costs more than the work, above it two threads stream the cache faster than one.
constexpr double DECODE_THREADED_WORK = 1 << 17;
// Cached prompt attention (Tq > 1 new queries) runs on the pool above this many
// multiply-adds (B·H·Tq·positions·D). Not measured: twice the decode threshold,
// chosen when the cached kernel was written (commit 4456f09).
constexpr double PREFILL_THREADED_WORK = 1 << 18;
// New query rows of one sequence up to which attention_cached_ragged runs them one by one
// through the decode loops (cached_query) instead of a head's GEMM tile (head_rows): a
// speculative verifier's k + 1 rows. Measured (6 heads of 64, 72 cached slots, 1 thread,
// loaded machine; CPU time per call): 1 row 4.6 µs, 2–8 rows through the tile 29–34 µs,
// since each of the tile's small products goes through the blocked GEMM's packing.
constexpr int FEW_QUERY_ROWS = 8;
// Most query heads one decode task handles together (the size of its inv[] buffer).
// Not a tuning knob: any group size gives the same result.
constexpr int MAX_HEADS_PER_DECODE_TASK = 64;

// Where things sit: head h of query row i of batch row b, and so on.
struct Layout {
  const AttnDims& d;
  long C, qs, kvs;
  int group;  // query heads per key/value head
  explicit Layout(const AttnDims& dims)
      : d(dims), C((long)dims.H * dims.D), qs(dims.qStride ? dims.qStride : (long)dims.H * dims.D),
        kvs(dims.kvStride ? dims.kvStride : (long)dims.Hkv * dims.D), group(dims.H / dims.Hkv) {}
  long q(int b, int i, int h) const { return ((long)b * d.Tq + i) * qs + (long)h * d.D; }   // q, dq
  long kv(int b, int j, int g) const { return ((long)b * d.Tk + j) * kvs + (long)g * d.D; }  // k, v, dk, dv
  long o(int b, int i, int h) const { return ((long)b * d.Tq + i) * C + (long)h * d.D; }     // out, dout
  // Keys a tile of query rows i0 … i0 + rows − 1 may see: 0 … keys − 1 (causal: up to its last row's diagonal).
  int keys(int i0, int rows) const { return d.causal ? std::clamp(i0 + rows + d.Tk - d.Tq, 0, d.Tk) : d.Tk; }
};

// One key/value head's keys (or values), rows 0 … Tk − 1, transposed to [D, Tk]: q·kᵀ then
// reads kᵀ by rows, as gemm_small wants its right-hand operand. Once per key/value head and
// pass, shared by all the query heads of its group (never once per query head).
static void transpose_head(const float* t, long ld, int Tk, int D, std::vector<float>& out) {
  out.resize((size_t)D * Tk);
  for (int j = 0; j < Tk; j++)
    for (int e = 0; e < D; e++) out[(size_t)e * Tk + j] = t[(long)j * ld + e];
}

// Whether a tile needs the general masks: key padding, or causal rows that may see no key
// (Tq > Tk). Otherwise the vectorised kernels below handle the causal diagonal themselves.
static bool general_mask(const AttnDims& d, int first) { return d.pad || (d.causal && first < 0); }

// Scores → softmax weights in place for tile rows r = 0 … rows − 1, row r seeing keys
// j ≤ first + r (causal) that are not padding; each row's log-sum-exp goes to lse
// (−∞ for a row that sees no key, whose weights are all 0).
static void softmax_tile(float* s, int rows, int cols, int first, const AttnDims& d, const uint8_t* pad, float* lse) {
  if (!general_mask(d, first)) return vec().softmax_tile(s, rows, cols, first, d.causal, lse);
  for (int r = 0; r < rows; r++) {
    float* row = s + (long)r * cols;
    const int visible = d.causal ? std::clamp(first + r + 1, 0, cols) : cols;
    float mx = -INFINITY;
    for (int j = 0; j < visible; j++)
      if (!pad || !pad[j]) mx = std::max(mx, row[j]);
    if (mx == -INFINITY) {
      std::fill(row, row + cols, 0.f);
      lse[r] = -INFINITY;
      continue;
    }
    vec().exp_rows(row, 1, cols, visible - 1, true, &mx);  // the same exp as the fast path
    float sum = 0.f;
    for (int j = 0; j < visible; j++) sum += (pad && pad[j]) ? (row[j] = 0.f) : row[j];
    const float inv = 1.f / sum;
    for (int j = 0; j < visible; j++) row[j] *= inv;
    lse[r] = mx + std::log(sum);
  }
}

// The backward pass's recomputation: s ← exp(s − lse) under the same masks as softmax_tile.
static void exp_tile(float* s, int rows, int cols, int first, const AttnDims& d, const uint8_t* pad, const float* lse) {
  if (!general_mask(d, first)) return vec().exp_rows(s, rows, cols, first, d.causal, lse);
  for (int r = 0; r < rows; r++) {
    float* row = s + (long)r * cols;
    const int visible = d.causal ? std::clamp(first + r + 1, 0, cols) : cols;
    if (lse[r] == -INFINITY) {
      std::fill(row, row + cols, 0.f);
      continue;
    }
    vec().exp_rows(row, 1, cols, visible - 1, true, lse + r);
    if (pad)
      for (int j = 0; j < visible; j++)
        if (pad[j]) row[j] = 0.f;
  }
}

// Dropout on a tile of weights p of head h, query rows i0 …: kept[r][j] = p[r][j]·mask, the
// mask drawn at index ((b·H + h)·Tq + i)·Tk + j (as js/attention.ts dropFactor). With dp
// given (the backward pass), dp[r][j] is multiplied by the same mask.
static void dropout_tile(const float* p, float* kept, float* dp, int rows, int cols, const AttnDims& d, int b, int h, int i0) {
  const uint32_t threshold = drop_threshold(d.dropP);
  const float keep = (float)(1.0 / (1.0 - d.dropP));
  for (int r = 0; r < rows; r++) {
    const long base = (((long)b * d.H + h) * d.Tq + i0 + r) * d.Tk;
    for (int j = 0; j < cols; j++) {
      const float m = drop_bits(d.seed, (uint32_t)(base + j)) < threshold ? 0.f : keep;
      kept[(long)r * cols + j] = p[(long)r * cols + j] * m;
      if (dp) dp[(long)r * cols + j] *= m;
    }
  }
}

struct ForwardScratch { std::vector<float> s, kt; };

// Task (b, g): every query head of key/value head g in batch row b.
static void forward_group(const float* q, const float* k, const float* v, float* out, float* lse, const AttnDims& d, int task,
                          ForwardScratch& w) {
  const Layout at(d);
  const int b = task / d.Hkv, g = task % d.Hkv;
  const uint8_t* pad = d.pad ? d.pad + (long)b * d.Tk : nullptr;
  transpose_head(k + at.kv(b, 0, g), at.kvs, d.Tk, d.D, w.kt);
  for (int h = g * at.group; h < (g + 1) * at.group; h++) {
    float* L = lse + ((long)b * d.H + h) * d.Tq;
    for (int i0 = 0; i0 < d.Tq; i0 += TILE_ROWS) {
      const int rows = std::min(TILE_ROWS, d.Tq - i0), keys = at.keys(i0, rows);
      float* o = out + at.o(b, i0, h);
      if (keys == 0) {  // no row of this tile sees a key: zeros
        for (int r = 0; r < rows; r++) std::fill(o + r * at.C, o + r * at.C + d.D, 0.f);
        std::fill(L + i0, L + i0 + rows, -INFINITY);
        continue;
      }
      w.s.resize((size_t)rows * keys);
      float* s = w.s.data();
      gemm_small(rows, keys, d.D, q + at.q(b, i0, h), at.qs, 1, w.kt.data(), d.Tk, s, keys, d.scale, false);  // S = Q·Kᵀ·scale
      softmax_tile(s, rows, keys, i0 + d.Tk - d.Tq, d, pad, L + i0);                                           // P = softmax(S)
      if (d.dropP > 0) dropout_tile(s, s, nullptr, rows, keys, d, b, h, i0);                                 // P ← P∘mask
      gemm_small(rows, d.D, keys, s, keys, 1, v + at.kv(b, 0, g), at.kvs, o, at.C, 1.f, false);               // O = P·V
    }
  }
}

// Mixed precision (d.bf16): the same tiles, with the two products on bf16 pairs (gemm.h).
// Per key/value head, once: kᵀ as pairs along the head's channels ([⌈D/2⌉, Tk]) and v as pairs
// down its positions ([⌈Tk/2⌉, D]); per tile, q's rows and the weights' rows as pairs.
struct PairScratch { std::vector<uint32_t> kt, vt, kc, vc, tmp, a, b, c, e; };

// t [Tk, D] (row stride ld) → dst [⌈D/2⌉, Tk]: pair q of column j is (t[j][2q], t[j][2q + 1]).
static void pairs_transposed(const float* t, long ld, int Tk, int D, std::vector<uint32_t>& tmp, std::vector<uint32_t>& dst) {
  const int Dp = (D + 1) / 2;
  tmp.resize((size_t)Tk * Dp);
  dst.resize((size_t)Dp * Tk);
  bf16_pairs_along_rows(t, ld, Tk, D, tmp.data(), Dp);
  for (int j = 0; j < Tk; j++)
    for (int q = 0; q < Dp; q++) dst[(size_t)q * Tk + j] = tmp[(size_t)j * Dp + q];
}

// A tile's rows as pairs along them ([rows, ⌈cols/2⌉]), or down its columns ([⌈rows/2⌉, cols]).
static uint32_t* along_rows(const float* x, long ld, int rows, int cols, std::vector<uint32_t>& buf) {
  buf.resize((size_t)rows * ((cols + 1) / 2));
  bf16_pairs_along_rows(x, ld, rows, cols, buf.data(), (cols + 1) / 2);
  return buf.data();
}
static uint32_t* down_cols(const float* x, long ld, int rows, int cols, std::vector<uint32_t>& buf) {
  buf.resize((size_t)((rows + 1) / 2) * cols);
  bf16_pairs_down_cols(x, ld, rows, cols, buf.data(), cols);
  return buf.data();
}

// An odd key count's last pair meets the value (or key) row just past it, times a zero weight:
// it adds nothing for finite values, which is all a trained layer holds.
static void forward_group_bf16(const float* q, const float* k, const float* v, float* out, float* lse, const AttnDims& d, int task,
                               ForwardScratch& w, PairScratch& x) {
  const Layout at(d);
  const int b = task / d.Hkv, g = task % d.Hkv, Dp = (d.D + 1) / 2;
  const uint8_t* pad = d.pad ? d.pad + (long)b * d.Tk : nullptr;
  pairs_transposed(k + at.kv(b, 0, g), at.kvs, d.Tk, d.D, x.tmp, x.kt);
  const uint32_t* vc = down_cols(v + at.kv(b, 0, g), at.kvs, d.Tk, d.D, x.vc);
  for (int h = g * at.group; h < (g + 1) * at.group; h++) {
    float* L = lse + ((long)b * d.H + h) * d.Tq;
    for (int i0 = 0; i0 < d.Tq; i0 += TILE_ROWS) {
      const int rows = std::min(TILE_ROWS, d.Tq - i0), keys = at.keys(i0, rows);
      float* o = out + at.o(b, i0, h);
      if (keys == 0) {
        for (int r = 0; r < rows; r++) std::fill(o + r * at.C, o + r * at.C + d.D, 0.f);
        std::fill(L + i0, L + i0 + rows, -INFINITY);
        continue;
      }
      w.s.resize((size_t)rows * keys);
      float* s = w.s.data();
      const uint32_t* qp = along_rows(q + at.q(b, i0, h), at.qs, rows, d.D, x.a);
      gemm_pairs(rows, keys, Dp, qp, Dp, 1, x.kt.data(), d.Tk, s, keys, d.scale, false);  // S = Q·Kᵀ·scale
      softmax_tile(s, rows, keys, i0 + d.Tk - d.Tq, d, pad, L + i0);                    // P = softmax(S), FP32
      if (d.dropP > 0) dropout_tile(s, s, nullptr, rows, keys, d, b, h, i0);
      const uint32_t* pp = along_rows(s, keys, rows, keys, x.b);
      gemm_pairs(rows, d.D, (keys + 1) / 2, pp, (keys + 1) / 2, 1, vc, d.D, o, at.C, 1.f, false);  // O = P·V
    }
  }
}

void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnDims& d) {
  if (d.bf16)
    return pool().run(d.B * d.Hkv, [&](int task, int) {
      thread_local ForwardScratch w;
      thread_local PairScratch x;
      forward_group_bf16(q, k, v, out, lse, d, task, w, x);
    });
  pool().run(d.B * d.Hkv, [&](int task, int) {
    thread_local ForwardScratch w;
    forward_group(q, k, v, out, lse, d, task, w);
  });
}

struct BackwardScratch { std::vector<float> p, dp, kept, kt, vt; };

static void backward_group(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                           float* dq, float* dk, float* dv, const AttnDims& d, bool acc, int task, BackwardScratch& w) {
  const Layout at(d);
  const int b = task / d.Hkv, g = task % d.Hkv;
  const uint8_t* pad = d.pad ? d.pad + (long)b * d.Tk : nullptr;
  if (!acc) {  // a first contribution: this task's slices of dq, dk, dv start from zero
    for (int i = 0; i < d.Tq; i++) std::fill(dq + at.q(b, i, g * at.group), dq + at.q(b, i, g * at.group) + (long)at.group * d.D, 0.f);
    for (int j = 0; j < d.Tk; j++)
      for (float* t : {dk, dv}) std::fill(t + at.kv(b, j, g), t + at.kv(b, j, g) + d.D, 0.f);
  }
  const float *kh = k + at.kv(b, 0, g), *vh = v + at.kv(b, 0, g);
  float *dkh = dk + at.kv(b, 0, g), *dvh = dv + at.kv(b, 0, g);
  transpose_head(kh, at.kvs, d.Tk, d.D, w.kt);
  transpose_head(vh, at.kvs, d.Tk, d.D, w.vt);
  for (int h = g * at.group; h < (g + 1) * at.group; h++) {
    const float* L = lse + ((long)b * d.H + h) * d.Tq;
    for (int i0 = 0; i0 < d.Tq; i0 += TILE_ROWS) {
      const int rows = std::min(TILE_ROWS, d.Tq - i0), keys = at.keys(i0, rows);
      if (keys == 0) continue;  // these rows saw nothing: no gradient
      w.p.resize((size_t)rows * keys);
      w.dp.resize((size_t)rows * keys);
      float* p = w.p.data();
      float* dp = w.dp.data();
      const float *qi = q + at.q(b, i0, h), *oi = out + at.o(b, i0, h), *dOi = dout + at.o(b, i0, h);
      // P: the weights, recomputed from the scores and the saved log-sum-exp.
      gemm_small(rows, keys, d.D, qi, at.qs, 1, w.kt.data(), d.Tk, p, keys, d.scale, false);
      exp_tile(p, rows, keys, i0 + d.Tk - d.Tq, d, pad, L + i0);
      // dP = dO·Vᵀ (through the dropout mask), then dS = P ⊙ (dP − Dᵢ) with Dᵢ = dOᵢ·Oᵢ, which
      // still equals Σⱼ Pᵢⱼ·dPᵢⱼ with dropout, O being the dropped weights times V.
      gemm_small(rows, keys, d.D, dOi, at.C, 1, w.vt.data(), d.Tk, dp, keys, 1.f, false);
      const float* kept = p;  // the weights V saw
      if (d.dropP > 0) {
        w.kept.resize((size_t)rows * keys);
        dropout_tile(p, w.kept.data(), dp, rows, keys, d, b, h, i0);
        kept = w.kept.data();
      }
      vec().softmax_tile_backward(p, dp, rows, keys, dOi, oi, at.C, d.D);
      // dQ += dS·K, dK += dSᵀ·Q, dV += P_keptᵀ·dO (a transposed tile is read with swapped strides).
      gemm_small(rows, d.D, keys, dp, keys, 1, kh, at.kvs, dq + at.q(b, i0, h), at.qs, d.scale, true);
      gemm_small(keys, d.D, rows, dp, 1, keys, qi, at.qs, dkh, at.kvs, d.scale, true);
      gemm_small(keys, d.D, rows, kept, 1, keys, dOi, at.C, dvh, at.kvs, 1.f, true);
    }
  }
}

// backward_group with the five products on bf16 pairs: S again from q and kᵀ, dP from dO and vᵀ,
// dQ from dS and k, dK from dSᵀ and q, dV from the kept weights' transpose and dO.
static void backward_group_bf16(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                                float* dq, float* dk, float* dv, const AttnDims& d, bool acc, int task, BackwardScratch& w, PairScratch& x) {
  const Layout at(d);
  const int b = task / d.Hkv, g = task % d.Hkv, Dp = (d.D + 1) / 2;
  const uint8_t* pad = d.pad ? d.pad + (long)b * d.Tk : nullptr;
  if (!acc) {
    for (int i = 0; i < d.Tq; i++) std::fill(dq + at.q(b, i, g * at.group), dq + at.q(b, i, g * at.group) + (long)at.group * d.D, 0.f);
    for (int j = 0; j < d.Tk; j++)
      for (float* t : {dk, dv}) std::fill(t + at.kv(b, j, g), t + at.kv(b, j, g) + d.D, 0.f);
  }
  const float *kh = k + at.kv(b, 0, g), *vh = v + at.kv(b, 0, g);
  float *dkh = dk + at.kv(b, 0, g), *dvh = dv + at.kv(b, 0, g);
  pairs_transposed(kh, at.kvs, d.Tk, d.D, x.tmp, x.kt);
  pairs_transposed(vh, at.kvs, d.Tk, d.D, x.tmp, x.vt);
  const uint32_t* kc = down_cols(kh, at.kvs, d.Tk, d.D, x.kc);
  for (int h = g * at.group; h < (g + 1) * at.group; h++) {
    const float* L = lse + ((long)b * d.H + h) * d.Tq;
    for (int i0 = 0; i0 < d.Tq; i0 += TILE_ROWS) {
      const int rows = std::min(TILE_ROWS, d.Tq - i0), keys = at.keys(i0, rows), kp = (keys + 1) / 2, rp = (rows + 1) / 2;
      if (keys == 0) continue;
      w.p.resize((size_t)rows * keys);
      w.dp.resize((size_t)rows * keys);
      float* p = w.p.data();
      float* dp = w.dp.data();
      const float *qi = q + at.q(b, i0, h), *oi = out + at.o(b, i0, h), *dOi = dout + at.o(b, i0, h);
      gemm_pairs(rows, keys, Dp, along_rows(qi, at.qs, rows, d.D, x.a), Dp, 1, x.kt.data(), d.Tk, p, keys, d.scale, false);
      exp_tile(p, rows, keys, i0 + d.Tk - d.Tq, d, pad, L + i0);
      gemm_pairs(rows, keys, Dp, along_rows(dOi, at.C, rows, d.D, x.a), Dp, 1, x.vt.data(), d.Tk, dp, keys, 1.f, false);
      const float* kept = p;
      if (d.dropP > 0) {
        w.kept.resize((size_t)rows * keys);
        dropout_tile(p, w.kept.data(), dp, rows, keys, d, b, h, i0);
        kept = w.kept.data();
      }
      // dV += P_keptᵀ·dO: both as pairs down their rows (the product's depth is the tile's rows).
      gemm_pairs(keys, d.D, rp, down_cols(kept, keys, rows, keys, x.a), 1, keys, down_cols(dOi, at.C, rows, d.D, x.b), d.D, dvh, at.kvs,
                 1.f, true);
      vec().softmax_tile_backward(p, dp, rows, keys, dOi, oi, at.C, d.D);  // dS, FP32, in dp
      gemm_pairs(rows, d.D, kp, along_rows(dp, keys, rows, keys, x.a), kp, 1, kc, d.D, dq + at.q(b, i0, h), at.qs, d.scale, true);
      gemm_pairs(keys, d.D, rp, down_cols(dp, keys, rows, keys, x.a), 1, keys, down_cols(qi, at.qs, rows, d.D, x.b), d.D, dkh, at.kvs,
                 d.scale, true);
    }
  }
}

void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                        float* dq, float* dk, float* dv, const AttnDims& d, bool acc) {
  if (d.bf16)
    return pool().run(d.B * d.Hkv, [&](int task, int) {
      thread_local BackwardScratch w;
      thread_local PairScratch x;
      backward_group_bf16(q, k, v, out, lse, dout, dq, dk, dv, d, acc, task, w, x);
    });
  // Each (batch row, key/value head) task touches only its own slices of dq, dk and dv (its
  // query heads', and the key/value head they share): no races between tasks.
  pool().run(d.B * d.Hkv, [&](int task, int) {
    thread_local BackwardScratch w;
    backward_group(q, k, v, out, lse, dout, dq, dk, dv, d, acc, task, w);
  });
}

// C[m×n] (ldc) = alpha·op(A)·op(B) (+C), single-threaded (we are inside a pool task).
static void mm(bool tA, bool tB, int m, int n, int k, const float* a, long lda, const float* b, long ldb,
               float* c, long ldc, float alpha, bool acc) {
  Gemm g{tA, tB, m, n, k, a, lda, b, ldb, c, ldc, alpha, acc, 1, 0, 0, 0, nullptr};
  gemm_serial(g);
}

// Attention of new queries against a KV cache (generation). q, out: [B, Tq, H·D];
// kc, vc: [B, cap, Hkv·D], query head h reading cache head h / (H / Hkv). Query t of
// row b sits at cache slot past + t and sees slots start[b] … past + t: left padding
// before start[b] is invisible. The same block structure as forward_group, with key 0
// at slot start[b].
//
// One head's part: qh, oh its first query row (rows C apart), kh, vh its key 0 (rows
// ldkv apart); query row i sees keys 0 … shift + i (none when that is negative).
static void head_rows(const float* qh, float* oh, long C, const float* kh, const float* vh, long ldkv, int Tq, int shift0,
                      int D, float scale, std::vector<float>& s) {
  for (int i0 = 0; i0 < Tq; i0 += TILE_ROWS) {
    const int rows = std::min(TILE_ROWS, Tq - i0);
    const int shift = shift0 + i0;                       // query row r sees relative keys j ≤ shift + r
    const int keys = std::max(0, shift + rows);
    float* o0 = oh + (long)i0 * C;
    if (keys == 0) {
      for (int r = 0; r < rows; r++) std::fill(o0 + (long)r * C, o0 + (long)r * C + D, 0.f);
      continue;
    }
    s.resize((size_t)rows * keys);
    mm(false, true, rows, keys, D, qh + (long)i0 * C, C, kh, ldkv, s.data(), keys, scale, false);
    float mx[TILE_ROWS];
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
    mm(false, false, rows, D, keys, s.data(), keys, vh, ldkv, o0, C, 1.f, false);
    for (int r = 0; r < rows; r++) {
      double sum = 0;
      for (int j = 0; j < keys; j++) sum += s[(size_t)r * keys + j];
      const float inv = sum > 0 ? (float)(1.0 / sum) : 0.f;
      float* o = o0 + (long)r * C;
      for (int e = 0; e < D; e++) o[e] *= inv;
    }
  }
}

static void cached_head(const float* q, const float* kc, const float* vc, float* out, const int32_t* start, const KvDims& d,
                        int task, std::vector<float>& s) {
  const int b = task / d.H, hd = task % d.H, C = d.H * d.D, Ckv = d.Hkv * d.D;
  const long qbase = (long)b * d.Tq * C + (long)hd * d.D;
  const int s0 = std::min(start[b], d.past + d.Tq);
  const long kbase = ((long)b * d.cap + s0) * Ckv + (long)(hd / (d.H / d.Hkv)) * d.D;
  head_rows(q + qbase, out + qbase, C, kc + kbase, vc + kbase, Ckv, d.Tq, d.past - s0, d.D, d.scale, s);
}

// Decoding (one new query per row): plain loops over the cached keys, which
// for a single query are cheaper than setting up GEMM tiles. Heads h0 … h1 − 1
// of row b go together, key by key: each cached key and value row is then read
// as one contiguous run (a row holds every head side by side) instead of a
// 256-byte piece per head at a 3 KB stride, which the prefetchers do not follow.
// Query head h reads cache head h / group in place. `rows` says where a cached slot's
// keys (and, at the same offset, values) start, `rows(slot)`, and how many slots from
// there follow it at a stride of one row, `rows.run(slot)`: a contiguous cache is one run
// (ContiguousRows), a block table one run per block (BlockRows, attention_paged below).
// The loops walk run by run, so a paged cache costs one table look-up per block, not a
// look-up and two integer divisions per slot and per pass (keys, then values): with
// 4 heads of 32 those divisions were about a fifth of a decode step's attention.
struct ContiguousRows {
  long base, Ckv;
  long operator()(int slot) const { return base + slot * Ckv; }
  int run(int) const { return INT_MAX; }
};
struct BlockRows {
  const int32_t* table;
  int blockTokens;
  long Ckv;
  long operator()(int slot) const { return ((long)table[slot / blockTokens] * blockTokens + slot % blockTokens) * Ckv; }
  int run(int slot) const { return blockTokens - slot % blockTokens; }
};

template <class Rows>
static void cached_query(const float* q, const float* kc, const float* vc, float* out, int first, const KvDims& d,
                         int b, int h0, int h1, std::vector<float>& w, const Rows& rows) {
  const long C = (long)d.H * d.D;
  const int last = d.past;  // Tq == 1: the query sits at slot past
  const int n = last - first + 1, D = d.D, group = d.H / d.Hkv;
  const float* qr = q + b * C;
  float* o = out + b * C;
  std::fill(o + h0 * D, o + h1 * D, 0.f);
  if (n <= 0) return;
  w.resize((size_t)(h1 - h0) * n);
  const long Ckv = (long)d.Hkv * D;
  for (int j0 = 0; j0 < n;) {
    const int len = std::min(n - j0, rows.run(first + j0));
    vec().decode_scores(qr, kc + rows(first + j0), Ckv, len, h0, h1, group, D, d.scale, w.data() + j0, n);
    j0 += len;
  }
  float inv[MAX_HEADS_PER_DECODE_TASK];  // heads per task (checked by head_groups)
  for (int h = h0; h < h1; h++) {
    float* wh = w.data() + (size_t)(h - h0) * n;
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = std::max(mx, wh[j]);
    vec().exp_rows(wh, 1, n, 0, false, &mx);  // the same exp as the other attention paths
    double sum = 0;
    for (int j = 0; j < n; j++) sum += wh[j];
    inv[h - h0] = (float)(1.0 / sum);
  }
  for (int j0 = 0; j0 < n;) {
    const int len = std::min(n - j0, rows.run(first + j0));
    vec().decode_values(w.data() + j0, n, inv, vc + rows(first + j0), Ckv, len, h0, h1, group, D, o);
    j0 += len;
  }
}

// Heads per decode task: all of a row's when there are rows enough to share the
// threads, else groups of at most MAX_HEADS_PER_DECODE_TASK splitting the heads evenly.
static int head_groups(int rows, int H) {
  const int threads = pool().size();
  int g = rows >= threads ? 1 : std::min(H, (threads + rows - 1) / rows);
  while ((H + g - 1) / g > MAX_HEADS_PER_DECODE_TASK) g++;
  return g;
}

void attention_decode_heads(const float* q, const float* kc, const float* vc, float* out, int start, const KvDims& d, int h0, int h1) {
  thread_local std::vector<float> w;
  cached_query(q, kc, vc, out, std::max(0, start), d, 0, h0, h1, w, ContiguousRows{0, (long)d.Hkv * d.D});
}

void attention_cached(const float* q, const float* kc, const float* vc, float* out, const int32_t* start, const KvDims& d) {
  if (d.Tq == 1) {
    const double work = (double)d.B * d.H * (d.past + 1) * d.D;
    // Each step reads every cached key and value (8·work bytes) from memory, where
    // the cache rarely stays: past ~1 MB two threads stream it faster than one.
    const bool threaded = work >= DECODE_THREADED_WORK;
    const int g = threaded ? head_groups(d.B, d.H) : 1, per = (d.H + g - 1) / g;
    auto task = [&](int t, int) {
      thread_local std::vector<float> w;
      const int h0 = (t % g) * per;
      const int b = t / g;
      const long Ckv = (long)d.Hkv * d.D;
      cached_query(q, kc, vc, out, std::max(0, start[b]), d, b, h0, std::min(d.H, h0 + per), w, ContiguousRows{(long)b * d.cap * Ckv, Ckv});
    };
    if (!threaded) for (int t = 0; t < d.B * g; t++) task(t, 0);
    else pool().run(d.B * g, task);
    return;
  }
  const double work = (double)d.B * d.H * d.Tq * (d.past + d.Tq) * d.D;
  auto task = [&](int t, int) {
    thread_local std::vector<float> s;
    cached_head(q, kc, vc, out, start, d, t, s);
  };
  // Decoding a small model: waking the pool costs more than the work.
  if (work < PREFILL_THREADED_WORK) for (int t = 0; t < d.B * d.H; t++) task(t, 0);
  else pool().run(d.B * d.H, task);
}

void attention_cached_ragged(const float* q, float* out, const RaggedSeq* seqs, int S, int H, int Hkv, int D, float scale) {
  const long C = (long)H * D;
  double work = 0;
  for (int i = 0; i < S; i++) work += (double)H * seqs[i].Tq * (seqs[i].past + seqs[i].Tq) * D;
  // Prompts (Tq > 1) go head by head; a decoding sequence's heads go in groups (see cached_query).
  const bool threaded = work >= DECODE_THREADED_WORK;
  const int g = threaded ? head_groups(S, H) : 1, per = (H + g - 1) / g;
  auto task = [&](int t, int) {
    const RaggedSeq& s = seqs[t / H];
    const int part = t % H;
    const KvDims d{1, s.Tq, s.past, s.cap, H, Hkv, D, scale};
    const int32_t start = s.start;
    const float* qs = q + s.offset * C;
    float* os = out + s.offset * C;
    thread_local std::vector<float> scratch;
    if (s.Tq > FEW_QUERY_ROWS) return cached_head(qs, s.k, s.v, os, &start, d, part, scratch);
    const long Ckv = (long)Hkv * D;
    if (part >= g) return;
    // A few new rows (a speculative verifier's k + 1) go one by one as decoding rows: row t sits
    // at slot past + t and sees the slots up to it.
    for (int t = 0; t < s.Tq; t++) {
      const KvDims dt{1, 1, s.past + t, s.cap, H, Hkv, D, scale};
      cached_query(qs + t * C, s.k, s.v, os + t * C, std::max(0, start), dt, 0, part * per, std::min(H, (part + 1) * per), scratch, ContiguousRows{0, Ckv});
    }
  };
  if (!threaded) for (int t = 0; t < S * H; t++) task(t, 0);
  else pool().run(S * H, task);
}

// Prompts that begin with the same blocks (a shared system prompt, adopted from the prefix
// cache): for one query head, every member's new query rows are stacked and multiplied
// against the shared keys in one GEMM, and the weights against the shared values in another,
// instead of one skinny product per sequence (a suffix of 8–24 rows against 1 000 shared
// keys keeps the GEMM's register tile mostly empty). Each member's own slots after the
// shared ones (the rest of its prompt) get their own small products. The softmax of a row
// spans both parts, with one max and one sum, so the result is the same attention as
// attention_paged's one-sequence path, summed in another order. The shared slots are
// visible to every row: a group shares at most each member's `past` slots.
struct PromptGroup {
  std::vector<int> members;  // indices into seqs
  int shared;                // leading slots in common (whole blocks)
};

// Prompt sequences (Tq > 1, at least a block already cached) whose tables start with the
// same block, grouped with the first such sequence; groups of one are left out.
static std::vector<PromptGroup> prompt_groups(const PagedSeq* seqs, int S, int blockTokens) {
  std::vector<PromptGroup> groups;
  std::vector<char> taken(S, 0);
  auto eligible = [&](int i) { return seqs[i].Tq > 1 && seqs[i].past >= blockTokens && !taken[i]; };
  for (int i = 0; i < S; i++) {
    if (!eligible(i)) continue;
    PromptGroup g{{i}, 0};
    int blocks = seqs[i].past / blockTokens;
    for (int j = i + 1; j < S; j++) {
      if (!eligible(j) || seqs[j].table[0] != seqs[i].table[0]) continue;
      int c = 1;
      const int most = std::min(blocks, seqs[j].past / blockTokens);
      while (c < most && seqs[j].table[c] == seqs[i].table[c]) c++;
      blocks = std::min(blocks, c);
      g.members.push_back(j);
    }
    if (g.members.size() < 2) continue;
    g.shared = blocks * blockTokens;
    for (int m : g.members) taken[m] = 1;
    groups.push_back(std::move(g));
  }
  return groups;
}

struct GroupScratch { std::vector<float> q, k, v, s, own, ownk, ownv, o, mx, inv; };

// Copies slots lo … hi − 1 of a sequence's key/value head (at `head` in a row) into k and v,
// [hi − lo, D]; `row(slot)` is where a slot's row starts in the pools.
template <class Row>
static void gather_head(const float* kpool, const float* vpool, int lo, int hi, long head, int D, float* k, float* v, Row row) {
  for (int j = lo; j < hi; j++) {
    const long r = row(j) + head;
    std::copy(kpool + r, kpool + r + D, k + (size_t)(j - lo) * D);
    std::copy(vpool + r, vpool + r + D, v + (size_t)(j - lo) * D);
  }
}

// Query head h of a prompt group (see PromptGroup).
static void group_head(const float* q, float* out, const float* kpool, const float* vpool, const PagedSeq* seqs, const PromptGroup& g,
                       int h, int H, int Hkv, int D, float scale, int blockTokens, GroupScratch& w) {
  const long C = (long)H * D, Ckv = (long)Hkv * D, head = (long)(h / (H / Hkv)) * D;
  auto locate = [&](const PagedSeq& s) {
    return [&s, blockTokens, Ckv](int slot) { return ((long)s.table[slot / blockTokens] * blockTokens + slot % blockTokens) * Ckv; };
  };
  const int P = g.shared;
  int M = 0;
  for (int m : g.members) M += seqs[m].Tq;
  // The shared keys and values (read through the first member's table), and every member's query rows.
  w.k.resize((size_t)P * D);
  w.v.resize((size_t)P * D);
  gather_head(kpool, vpool, 0, P, head, D, w.k.data(), w.v.data(), locate(seqs[g.members[0]]));
  w.q.resize((size_t)M * D);
  for (int m = 0, r0 = 0; m < (int)g.members.size(); r0 += seqs[g.members[m]].Tq, m++) {
    const PagedSeq& s = seqs[g.members[m]];
    for (int r = 0; r < s.Tq; r++) std::copy(q + (s.offset + r) * C + h * D, q + (s.offset + r) * C + (h + 1) * D, w.q.data() + (size_t)(r0 + r) * D);
  }
  // Scores against the shared keys, all rows at once.
  w.s.resize((size_t)M * P);
  mm(false, true, M, P, D, w.q.data(), D, w.k.data(), D, w.s.data(), P, scale, false);
  w.o.resize((size_t)M * D);
  w.mx.resize(M);
  w.inv.resize(M);
  for (int m = 0, r0 = 0; m < (int)g.members.size(); r0 += seqs[g.members[m]].Tq, m++) {
    const PagedSeq& s = seqs[g.members[m]];
    // This member's own slots P … past + Tq − 1: row r sees the first past − P + r + 1 of them.
    const int n = s.past + s.Tq - P, shift = s.past - P;
    w.ownk.resize((size_t)n * D);
    w.ownv.resize((size_t)n * D);
    gather_head(kpool, vpool, P, P + n, head, D, w.ownk.data(), w.ownv.data(), locate(s));
    w.own.resize((size_t)s.Tq * n);
    mm(false, true, s.Tq, n, D, w.q.data() + (size_t)r0 * D, D, w.ownk.data(), D, w.own.data(), n, scale, false);
    float* sh = w.s.data() + (size_t)r0 * P;
    float* mx = w.mx.data() + r0;
    for (int r = 0; r < s.Tq; r++) {
      float m = -INFINITY;
      for (int j = 0; j < P; j++) m = std::max(m, sh[(size_t)r * P + j]);
      for (int j = 0; j <= shift + r; j++) m = std::max(m, w.own[(size_t)r * n + j]);
      mx[r] = m;
    }
    vec().exp_rows(sh, s.Tq, P, 0, false, mx);
    vec().exp_rows(w.own.data(), s.Tq, n, shift, true, mx);
    for (int r = 0; r < s.Tq; r++) {
      double sum = 0;
      for (int j = 0; j < P; j++) sum += sh[(size_t)r * P + j];
      for (int j = 0; j < n; j++) sum += w.own[(size_t)r * n + j];
      w.inv[r0 + r] = (float)(1.0 / sum);
    }
    mm(false, false, s.Tq, D, n, w.own.data(), n, w.ownv.data(), D, w.o.data() + (size_t)r0 * D, D, 1.f, false);
  }
  // Plus the weights against the shared values, all rows at once; then each row's 1 / sum.
  mm(false, false, M, D, P, w.s.data(), P, w.v.data(), D, w.o.data(), D, 1.f, true);
  for (int m = 0, r0 = 0; m < (int)g.members.size(); r0 += seqs[g.members[m]].Tq, m++) {
    const PagedSeq& s = seqs[g.members[m]];
    for (int r = 0; r < s.Tq; r++) {
      float* o = out + (s.offset + r) * C + h * D;
      const float* src = w.o.data() + (size_t)(r0 + r) * D;
      for (int e = 0; e < D; e++) o[e] = src[e] * w.inv[r0 + r];
    }
  }
}

// Attention read through block tables (PagedAttention): one layer's keys and values
// live in a pool [blocks, blockTokens, Hkv·D], and slot t of sequence s is in block
// table[t / blockTokens] at t % blockTokens. The js reference is
// src/backend/js/attention_paged.ts. A decoding sequence reads each key row where
// it lies (cached_query with the table as its locator). A prompt's task (one query
// head) first copies its key/value head's columns of every visible slot into one
// contiguous run, because the tiled GEMMs of head_rows want them so; the copy (one
// pass over n·D floats) is small beside Tq passes of attention over them.
//
// That run lives in a thread_local buffer that keeps its size from call to call. An
// earlier version gathered every prompt's whole rows into buffers allocated per call
// (a megabyte per 1 000-slot sequence), and the page faults of that fresh memory, not
// the attention, were most of a shared-prefix suffix prefill's time: 64 requests with
// a 1 000-token system prompt and 8–24 tokens each took ≈ 12× the attention itself
// (docs/paged_kv.md).
void attention_paged(const float* q, float* out, const float* kpool, const float* vpool, const PagedSeq* seqs, int S,
                     int blockTokens, int H, int Hkv, int D, float scale) {
  const long C = (long)H * D, Ckv = (long)Hkv * D;
  const int group = H / Hkv;
  double work = 0;
  for (int i = 0; i < S; i++) work += (double)H * seqs[i].Tq * (seqs[i].past + seqs[i].Tq) * D;
  auto row = [&](const PagedSeq& s, int slot) { return ((long)s.table[slot / blockTokens] * blockTokens + slot % blockTokens) * Ckv; };
  const std::vector<PromptGroup> groups = prompt_groups(seqs, S, blockTokens);
  std::vector<char> inGroup(S, 0);
  for (const PromptGroup& pg : groups)
    for (int m : pg.members) inGroup[m] = 1;
  const bool threaded = work >= DECODE_THREADED_WORK;
  const int g = threaded ? head_groups(S, H) : 1, per = (H + g - 1) / g;
  // Tasks 0 … S·H − 1: (sequence, head), skipping grouped prompts; then (group, head).
  auto task = [&](int t, int) {
    if (t >= S * H) {
      thread_local GroupScratch gw;
      const int u = t - S * H;
      return group_head(q, out, kpool, vpool, seqs, groups[u / H], u % H, H, Hkv, D, scale, blockTokens, gw);
    }
    if (inGroup[t / H]) return;
    const PagedSeq& s = seqs[t / H];
    const int part = t % H;
    const float* qs = q + s.offset * C;
    float* os = out + s.offset * C;
    thread_local std::vector<float> scratch;
    if (s.Tq > 1) {
      // Query head `part` reads key/value head part / group: its D columns of slots 0 … n − 1, block by block.
      const int n = s.past + s.Tq;
      const long head = (long)(part / group) * D;
      thread_local std::vector<float> kv;
      if (kv.size() < (size_t)2 * n * D) kv.resize((size_t)2 * n * D);
      float *kh = kv.data(), *vh = kv.data() + (size_t)n * D;
      for (int j0 = 0; j0 < n; j0 += blockTokens) {
        const long at = row(s, j0) + head;
        for (int j = j0; j < std::min(n, j0 + blockTokens); j++) {
          const long r = at + (long)(j - j0) * Ckv;
          std::copy(kpool + r, kpool + r + D, kh + (size_t)j * D);
          std::copy(vpool + r, vpool + r + D, vh + (size_t)j * D);
        }
      }
      return head_rows(qs + (long)part * D, os + (long)part * D, C, kh, vh, D, s.Tq, s.past, D, scale, scratch);
    }
    if (part < g) cached_query(qs, kpool, vpool, os, 0, KvDims{1, 1, s.past, 0, H, Hkv, D, scale}, 0, part * per,
                               std::min(H, (part + 1) * per), scratch, BlockRows{s.table, blockTokens, Ckv});
  };
  const int tasks = (S + (int)groups.size()) * H;
  if (!threaded) for (int t = 0; t < tasks; t++) task(t, 0);
  else pool().run(tasks, task);
}

}  // namespace attn
