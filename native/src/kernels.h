// Fused and element-wise kernels besides GEMM. Each mirrors a function of the
// js backend (src/backend/js/*.ts), which is its reference in tests.
#pragma once
#include <cstdint>

namespace attn {

void layernorm_forward(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, int rows, int cols, float eps);
void layernorm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx, float* dw, float* db, int rows, int cols,
                        bool acc);

void rmsnorm_forward(const float* x, const float* w, float* out, float* rstd, int rows, int cols, float eps);
void rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw, int rows, int cols, bool acc);

void silu_forward(const float* x, float* out, long n);
void silu_backward(const float* x, const float* dy, float* dx, long n, bool acc);
// SwiGLU: out = silu(g)·u over n elements; backward into dg and/or du (null: skipped).
void swiglu_forward(const float* g, const float* u, float* out, long n);
void swiglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du, long n, bool acc_g, bool acc_u);

void gelu_forward(const float* x, float* out, long n);
void gelu_backward(const float* x, const float* dy, float* dx, long n, bool acc);

void softmax_forward(const float* x, float* out, int rows, int cols);

// Returns the summed loss; *count receives the number of rows not ignored.
double cross_entropy_forward(const float* logits, const int32_t* targets, float* lse, int rows, int vocab, int ignore, int* count);
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, float* dlogits, int rows, int vocab, int ignore, float scale,
                            bool acc);

void embedding_forward(const float* w, const int32_t* ids, float* out, int n, int dim);
void embedding_backward(const float* dout, const int32_t* ids, float* dw, int n, int dim);

// Attention of Tq queries [B, Tq, ·] (H heads of D channels, row stride qStride; out and dout
// are [B, Tq, H·D]) against Tk keys and values [B, Tk, ·] (Hkv heads, row stride kvStride).
// Query head h reads key/value head h / (H / Hkv) in place (grouped-query attention).
// causal: query i sees keys j ≤ i + Tk − Tq. pad: B·Tk flags (1 = key hidden) or null.
// dropP > 0: dropout on the probabilities, mask of (b, h, i, j) = drop_bits(seed, ((b·H + h)·Tq + i)·Tk + j).
struct AttnDims {
  int B, Tq, Tk, H, Hkv, D;
  bool causal;
  float scale;
  long qStride, kvStride;
  const uint8_t* pad;
  double dropP;
  uint32_t seed;
  // Mixed precision: the products (q·kᵀ, p·v and the backward's five) take bf16 operands with
  // FP32 sums (gemm_pairs); softmax, its log-sum-exp and dS stay FP32. The js twin rounds the same operands.
  bool bf16 = false;
};
// Keeps only each row's log-sum-exp (lse, [B,H,Tq]) for backward, never a Tq×Tk matrix.
void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnDims& d);
// acc: add into dq, dk, dv; else overwrite them.
void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
                        float* dq, float* dk, float* dv, const AttnDims& d, bool acc);

struct KvDims { int B, Tq, past, cap, H, Hkv, D; float scale; };
// New queries [B, Tq, H·D] against a KV cache [B, cap, Hkv·D]: query t of row b sees cache slots start[b] … past + t.
void attention_cached(const float* q, const float* kc, const float* vc, float* out, const int32_t* start, const KvDims& d);
// Decoding one row (B = Tq = 1): only query heads h0 … h1 − 1 (h1 − h0 ≤ 64), on the calling thread.
void attention_decode_heads(const float* q, const float* kc, const float* vc, float* out, int start, const KvDims& d, int h0, int h1);
// Several sequences, each with a one-row cache of its own (a continuous batch): q and out
// are [rows, H·D], sequence s owning rows offset … offset + Tq − 1. One pool run for all heads.
struct RaggedSeq { const float* k; const float* v; int cap, past, start, offset, Tq; };
void attention_cached_ragged(const float* q, float* out, const RaggedSeq* seqs, int S, int H, int Hkv, int D, float scale);
// The same with keys and values in one pool of blocks [blocks, blockTokens, Hkv·D] (PagedAttention):
// sequence s's slot t lives in block table[t / blockTokens]; its Tq new queries sit at slots past … past + Tq − 1.
struct PagedSeq { const int32_t* table; int past, offset, Tq; };
void attention_paged(const float* q, float* out, const float* kpool, const float* vpool, const PagedSeq* seqs, int S,
                     int blockTokens, int H, int Hkv, int D, float scale);

// RoPE's rotation (js/rope.ts): out (+)= R(direction·angle)·x for every channel pair of every head of
// x [B, T, H·D]; pairs (i, i + D/2) when half, else (2i, 2i + 1). cos, sin: [T, D/2], or [B·T, D/2]
// when per_row. In place (out == x) is allowed.
void rope(const float* x, float* out, const float* cos, const float* sin, int B, int T, int H, int D, bool half, bool per_row, int direction,
          bool acc);

// Dropout with the js backend's counter-based mask (see VecKernels::dropout_forward).
void dropout_forward(const float* x, float* out, float* mask, long n, double p, uint32_t seed);
void dropout_backward(const float* dy, const float* mask, float* dx, long n, bool acc);
void adamw_step(float* p, const float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float wd, int step);
double sum_squares(const float* x, long n);
void scale_inplace(float* x, long n, float s);
void add(const float* a, const float* b, float* out, long n);
void col_sum_add(const float* src, long rows, long cols, float* dst);  // dst[j] += Σ_r src[r][j]
void add_rows(const float* a, const float* b, float* out, long rows, long cols);  // out = a + b (b broadcast over rows)

}  // namespace attn
