// Block-quantized products on AVX-512 CPUs: with VNNI (vpdpbusd: four byte
// products summed into an int32 in one instruction) where the CPU has it,
// else the AVX2 byte products. Blocks are 32 bytes, so 256-bit vectors (AVX-512VL).
#include <algorithm>
#include <cstring>
#include <vector>

#include "quant.h"
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")
#include <immintrin.h>
namespace attn { namespace avx512 {
namespace vnni {
#define QUANT_SIMD 2
#include "quant_impl.inc"
#undef QUANT_SIMD
}  // namespace vnni
namespace plain {
#define QUANT_SIMD 1
#include "quant_impl.inc"
}  // namespace plain
void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1) { plain::rows_impl(g, a, n0, n1); }
void quant_rows_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1) { vnni::rows_impl(g, a, n0, n1); }
void quant_rows16_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1) { vnni::rows16_impl(g, a, n0, n1); }
}}  // namespace attn::avx512
#else
namespace attn { namespace avx512 {
void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1) { portable::quant_rows(g, a, n0, n1); }
void quant_rows_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1) { portable::quant_rows(g, a, n0, n1); }
void quant_rows16_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1) { portable::quant_rows(g, a, n0, n1); } } }
#endif
