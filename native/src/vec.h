// Vectorised element-wise loops, one copy per instruction set, chosen at run
// time with the GEMM's ISA (cpu.h).
#pragma once
#include <cstdint>

namespace attn {

// AdamW's per-step constants: bias corrections folded into the step size and the denominator.
struct AdamConsts { float beta1, beta2, eps, stepSize, bc2Sqrt, decay; };

// Kernels over an index range [lo, hi) (elements or rows), so callers can split work across threads.
// `acc`: add into the output (a gradient that already holds a contribution) instead of overwriting it.
struct VecKernels {
  void (*gelu_forward)(const float* x, float* out, long lo, long hi);
  void (*gelu_backward)(const float* x, const float* dy, float* dx, long lo, long hi, bool acc);  // dx (+)= dy·gelu'(x)
  void (*add)(const float* a, const float* b, float* out, long lo, long hi);
  void (*col_sum)(const float* src, long rows, long cols, float* dst, long c0, long c1);  // dst[j] += Σ_r src[r][j]
  // s[r][j] ← exp(s[r][j] − z[r]) for keys a causal row i0 + r may see, 0 for the rest.
  void (*exp_rows)(float* s, int rows, int cols, int i0, bool causal, const float* z);
  void (*add_rows)(const float* a, const float* b, float* out, long lo, long hi, long cols);  // out = a + b, b one row
  void (*layernorm_forward)(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, long lo, long hi,
                            int cols, float eps);
  void (*layernorm_backward)(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx,
                             float* pw, float* pb, long lo, long hi, int cols, bool acc);
  void (*softmax_rows)(const float* x, float* out, long lo, long hi, int cols);
  double (*cross_entropy_forward)(const float* logits, const int32_t* targets, float* lse, long lo, long hi, int vocab, int ignore,
                                  int* count);
  void (*cross_entropy_backward)(const float* logits, const int32_t* targets, const float* lse, float* d, long lo, long hi, int vocab,
                                 int ignore, float scale, bool acc);
  void (*adamw)(float* p, const float* g, float* m, float* v, long lo, long hi, const AdamConsts& c);
  double (*sum_squares)(const float* x, long lo, long hi);
  void (*scale)(float* x, long lo, long hi, float s);
  // Dropout with a counter-based mask (the js backend's dropBits): element i is dropped when
  // its hash of (seed, i) is below threshold; mask gets 0 or keep, out = x·mask.
  void (*dropout_forward)(const float* x, float* out, float* mask, long lo, long hi, uint32_t seed, uint32_t threshold, float keep);
  void (*dropout_backward)(const float* dy, const float* mask, float* dx, long lo, long hi, bool acc);
  // Attention tiles (attention.cc): softmax in place with each row's log-sum-exp, and its backward.
  void (*softmax_tile)(float* s, int rows, int cols, int i0, bool causal, float* lse);
  void (*softmax_tile_backward)(const float* p, float* dp, int rows, int cols, const float* dout, const float* out, long ld, int D);
  // RMSNorm (Llama): out = w·x·rstd with rstd = 1/√(mean(x²) + eps); backward writes this chunk's dW sums to pw.
  void (*rmsnorm_forward)(const float* x, const float* w, float* out, float* rstd, long lo, long hi, int cols, float eps);
  void (*rmsnorm_backward)(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* pw, long lo, long hi,
                           int cols, bool acc);
  // SiLU x·σ(x) (the SwiGLU gate) and dx (+)= dy·silu'(x).
  void (*silu_forward)(const float* x, float* out, long lo, long hi);
  void (*silu_backward)(const float* x, const float* dy, float* dx, long lo, long hi, bool acc);
  // SwiGLU in one pass: out = silu(g)·u; backward dg (+)= dy·u·silu'(g), du (+)= dy·silu(g) (a null one is skipped).
  void (*swiglu_forward)(const float* g, const float* u, float* out, long lo, long hi);
  void (*swiglu_backward)(const float* g, const float* u, const float* dy, float* dg, float* du, long lo, long hi, bool acc_g,
                          bool acc_u);
  // Decoding attention (attention.cc's cached_query), one query row against n cached rows
  // at a stride of ld floats, query head h reading cached head h / group at offset (h / group)·D:
  // w[(h − h0)·ldw + j] = scale · q_h · k_j for heads h0 … h1 − 1, and
  // o_h += Σ_j w[(h − h0)·ldw + j] · inv[h − h0] · v_j.
  void (*decode_scores)(const float* q, const float* k, long ld, int n, int h0, int h1, int group, int D, float scale, float* w,
                        long ldw);
  void (*decode_values)(const float* w, long ldw, const float* inv, const float* v, long ld, int n, int h0, int h1, int group, int D,
                        float* o);
};

const VecKernels& vec();

namespace portable { extern const VecKernels table; }
namespace avx2 { extern const VecKernels table; }
namespace avx512 { extern const VecKernels table; }

}  // namespace attn
