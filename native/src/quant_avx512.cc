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

// roundf (half away from zero) exactly: truncate, then step away from zero where the
// dropped fraction (exact in float) is at least one half.
static inline __m512 round_half_away(__m512 t) {
  const __m512 r = _mm512_roundscale_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(t, r));
  const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(t), _mm512_set1_epi32((int)0x80000000u));
  const __m512 step = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1.f)), sign));  // ±1 with t's sign
  return _mm512_mask_add_ps(r, up, r, step);
}

void quantize_acts(const float* x, long blocks, int offset, int8_t* q, float* d, float* d8, int32_t* corr, int32_t* corr1) {
  for (long b = 0; b < blocks; b++) {
    const __m512 x0 = _mm512_loadu_ps(x + b * 32), x1 = _mm512_loadu_ps(x + b * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const float db = amax / 127.f;
    const float id = db != 0.f ? 1.f / db : 0.f;
    const __m512 idv = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(x0, idv)));
    const __m512i q1 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(x1, idv)));
    int8_t* qb = q + b * 32;
    _mm_storeu_si128((__m128i*)qb, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i*)(qb + 16), _mm512_cvtepi32_epi8(q1));
    // corr[l] = −offset·(q[4l] + … + q[4l+3]): byte pairs summed by vpmaddubsw (1·q, exact in 16 bits),
    // then pairs of those by vpmaddwd, in integers, so the same values as the scalar loop.
    const __m256i qv = _mm256_loadu_si256((const __m256i*)qb);
    const __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), qv), _mm256_set1_epi16(1));
    const __m256i cv = _mm256_mullo_epi32(s4, _mm256_set1_epi32(-offset));
    _mm256_storeu_si256((__m256i*)(corr + b * 8), cv);
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(cv), _mm256_extracti128_si256(cv, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    corr1[b] = _mm_cvtsi128_si32(t);
    d[b] = db;
    _mm256_storeu_ps(d8 + b * 8, _mm256_set1_ps(db));
  }
}
void quant_rows_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1) { vnni::rows_impl(g, a, n0, n1); }
void quant_rows16_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1) { vnni::rows16_impl(g, a, n0, n1); }
}}  // namespace attn::avx512
#else
namespace attn { namespace avx512 {
void quantize_acts(const float*, long, int, int8_t*, float*, float*, int32_t*, int32_t*) {}  // never chosen: current_isa() is never Avx512 here
void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1) { portable::quant_rows(g, a, n0, n1); }
void quant_rows_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1) { portable::quant_rows(g, a, n0, n1); }
void quant_rows16_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1) { portable::quant_rows(g, a, n0, n1); } } }
#endif
