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
