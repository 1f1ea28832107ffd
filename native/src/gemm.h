// C = alpha·op(A)·op(B) (+ C when accumulate), for `batch` matrices; the same
// contract as GemmArgs in src/backend/backend.ts.
#pragma once

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

}  // namespace attn
