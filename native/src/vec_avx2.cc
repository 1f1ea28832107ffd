// AVX2 + FMA copy of the element-wise loops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "vec.h"
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
namespace attn { namespace avx2 {
#include "vec_impl.inc"
}}  // namespace attn::avx2
#else
namespace attn { namespace avx2 { const VecKernels table = portable::table; } }
#endif
