// AVX-512 copy of the element-wise loops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "vec.h"
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,fma")
#include <immintrin.h>
#define VEC_ZMM 1  // vec_impl.inc: the decode attention's explicit 512-bit loops
namespace attn { namespace avx512 {
#include "vec_impl.inc"
}}  // namespace attn::avx512
#else
namespace attn { namespace avx512 { const VecKernels table = portable::table; } }
#endif
