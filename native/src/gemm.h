// C = alpha·op(A)·op(B) (+ C when accumulate), for `batch` matrices; the same
// contract as GemmArgs in src/backend/backend.ts.
#pragma once

#include "bf16.h"

namespace attn {

struct Gemm {
  bool transA, transB;
  int M, N, K;
  const float* a; long lda;
  const float* b; long ldb;
  float* c; long ldc;
  float alpha;
  bool accumulate;
  int batch;
  long strideA, strideB, strideC;
  const float* bias = nullptr;  // optional, length N: added to every row of every C
  // Mixed precision: round A and B to bfloat16 (bf16.h) and keep FP32 sums.
  // vdpbf16ps where the CPU has AVX-512 BF16 (gemm_bf16.cc), else the FP32
  // kernels multiply the rounded operands (the same products, summed in another order).
  bool bf16 = false;
};

void gemm(const Gemm& g);
// Single-threaded, for callers that already run on the pool (nested pool runs would deadlock).
void gemm_serial(const Gemm& g);

// C[m×n] (ldc) = alpha·A·B (+ C when add) for small operands already in cache, single-threaded
// and without packing: A's element (i, k) at a[i·ars + k·acs] (any layout), B row-major (ldb).
void gemm_small(int m, int n, int k, const float* a, long ars, long acs, const float* b, long ldb, float* c, long ldc, float alpha,
                bool add);

// bf16 pair products, for the fused attention under mixed precision (attention.cc). A pair is
// two bf16 values (k, k + 1) in 32 bits, k's in the low half: what vdpbf16ps multiplies. The
// operands are converted to pairs once (rounded as bf16_bits) and multiplied with FP32 sums;
// vdpbf16ps where bf16_dot(), else plain FP32 multiply-adds of the same rounded numbers.
//
// dst[i·ldd + q] = pair(src[i·ld + 2q], src[i·ld + 2q + 1]) for i < m, q < ⌈k/2⌉ (an odd k's last pair padded with 0).
void bf16_pairs_along_rows(const float* src, long ld, int m, int k, uint32_t* dst, long ldd);
// dst[q·ldd + j] = pair(src[2q·ld + j], src[(2q + 1)·ld + j]) for q < ⌈k/2⌉, j < n (row k padded with 0 when k is odd).
void bf16_pairs_down_cols(const float* src, long ld, int k, int n, uint32_t* dst, long ldd);
// C[m×n] (ldc) = alpha·Σ_q A(i, q)·B(q, j) (+ C when add), each term a pair's two products; A's
// pair (i, q) at a[i·ars + q·acs] (any layout), B's (q, j) at b[q·ldb + j]. Single-threaded.
void gemm_pairs(int m, int n, int kp, const uint32_t* a, long ars, long acs, const uint32_t* b, long ldb, float* c, long ldc,
                float alpha, bool add);
#define ATTN_PAIRS_DECLS                                                                                          \
  void bf16_pairs_along_rows(const float* src, long ld, int m, int k, uint32_t* dst, long ldd);                    \
  void bf16_pairs_down_cols(const float* src, long ld, int k, int n, uint32_t* dst, long ldd);                     \
  void gemm_pairs(int m, int n, int kp, const uint32_t* a, long ars, long acs, const uint32_t* b, long ldb, float* c, \
                  long ldc, float alpha, bool add);
namespace pairs_portable { ATTN_PAIRS_DECLS }  // scalar: bf16_bits, FP32 multiply-adds (gemm.cc)
namespace avx512bf16 { ATTN_PAIRS_DECLS }      // vcvtne2ps2bf16 and vdpbf16ps (gemm_bf16.cc)

// One implementation per instruction set (gemm_<isa>.cc), all from gemm_impl.inc.
#define ATTN_GEMM_ISA_DECLS                                                                                                 \
  void gemm(const Gemm& g, int threads);                                                                                   \
  void gemm_small(int m, int n, int k, const float* a, long ars, long acs, const float* b, long ldb, float* c, long ldc, \
                  float alpha, bool add);
namespace portable { ATTN_GEMM_ISA_DECLS }
namespace avx2 { ATTN_GEMM_ISA_DECLS }
namespace avx512 { ATTN_GEMM_ISA_DECLS }
namespace avx512bf16 { ATTN_GEMM_ISA_DECLS }  // the AVX-512 kernels plus vdpbf16ps for bf16 products

}  // namespace attn
