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

// One implementation per instruction set (gemm_<isa>.cc), all from gemm_impl.inc.
namespace portable { void gemm(const Gemm& g, int threads); }
namespace avx2 { void gemm(const Gemm& g, int threads); }
namespace avx512 { void gemm(const Gemm& g, int threads); }

}  // namespace attn
