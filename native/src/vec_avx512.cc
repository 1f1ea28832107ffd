// AVX-512 copy of the element-wise loops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "vec.h"
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,fma")
namespace attn { namespace avx512 {
#include "vec_impl.inc"
}}  // namespace attn::avx512
#else
namespace attn { namespace avx512 { const VecKernels table = portable::table; } }
#endif
