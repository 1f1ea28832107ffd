// Vectorised element-wise loops, one copy per instruction set, chosen at run
// time with the GEMM's ISA (cpu.h).
#pragma once

namespace attn {

struct VecKernels {
  void (*gelu_forward)(const float* x, float* out, long lo, long hi);
  void (*gelu_backward)(const float* x, const float* dy, float* dx, long lo, long hi);  // dx += dy·gelu'(x)
  void (*add)(const float* a, const float* b, float* out, long lo, long hi);
  void (*col_sum)(const float* src, long rows, long cols, float* dst, long c0, long c1);  // dst[j] += Σ_r src[r][j]
  // s[r][j] ← exp(s[r][j] − z[r]) for keys a causal row i0 + r may see, 0 for the rest.
  void (*exp_rows)(float* s, int rows, int cols, int i0, bool causal, const float* z);
};

const VecKernels& vec();

namespace portable { extern const VecKernels table; }
namespace avx2 { extern const VecKernels table; }
namespace avx512 { extern const VecKernels table; }

}  // namespace attn
