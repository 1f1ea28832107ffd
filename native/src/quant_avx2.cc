// Block-quantized products with AVX2: vpmaddubsw byte products, FMA.
#include <algorithm>
#include <cstring>
#include <vector>

#include "quant.h"
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
namespace attn { namespace avx2 {
#define QUANT_SIMD 1
#include "quant_impl.inc"
void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1) { rows_impl(g, a, n0, n1); }
}}  // namespace attn::avx2
#else
namespace attn { namespace avx2 {
void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1) { portable::quant_rows(g, a, n0, n1); } } }
#endif
