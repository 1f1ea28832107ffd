// AVX-512 BF16: the AVX-512 GEMM (8×32 tile), plus, for mixed-precision
// products (Gemm::bf16), panels of bfloat16 pairs multiplied by vdpbf16ps:
// each instruction does 32 multiply-adds into 16 FP32 sums, twice an FP32
// FMA's 16, which is where bf16 training's speed-up comes from.
//
// vdpbf16ps(acc, a, b) adds a[2i]·b[2i] + a[2i+1]·b[2i+1] to acc[i]: it wants
// k in pairs. So B's panel holds, for each k pair, NR columns × (k, k+1), and
// A's panel, for each k pair, MR rows × (k, k+1); the micro-kernel broadcasts
// one row's pair (32 bits) against a vector of 16 columns' pairs.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "threadpool.h"
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512bf16,fma")
namespace attn { namespace avx512bf16 {
#define VEC_BYTES 64
#define ATTN_BF16_DOT
constexpr int MR = 8;
constexpr int NRV = 2;
#include <immintrin.h>
typedef float vf __attribute__((vector_size(64)));
static inline vf load(const float* p) { return (vf)_mm512_loadu_ps(p); }
static inline void store(float* p, vf v) { _mm512_storeu_ps(p, (__m512)v); }
static inline vf splat(float x) { return (vf)_mm512_set1_ps(x); }
static void pack_bf16(const float* src, long rs, long ks, int r0, int rows, int k0, int kc, int R, uint16_t* dst);
static void micro_bf16(int kc, const uint16_t* a, const uint16_t* b, float* c, long ldc, int m, int n, float alpha, bool add,
                       const float* bias);
#include "gemm_impl.inc"

// dst[((panel·kp + q)·R + r)·2 + e] = bf16 of element (r0 + panel·R + r, k0 + 2q + e), with
// kp = ⌈kc/2⌉ pairs; zero past `rows` and past kc (an odd depth's last pair).
// Element (r, k) of the source lives at src[r·rs + k·ks].
//
// The rounding is vcvtne2ps2bf16's (the same bits as bf16_bits, bf16.h), 32 floats per
// instruction. A scalar bf16_bits per element, as this was first written, took about a
// third of a bf16 product's time at config M (perf, one thread): a weight-sized operand is
// packed once per call and each element feeds only N (or M) multiply-adds, 32 of which one
// vdpbf16ps does. Two layouts have vector paths; any other stride pattern goes element by element.
static void pack_bf16_scalar(const float* src, long rs, long ks, int r0, int rows, int k0, int kc, int R, uint16_t* dst) {
  const int kp = (kc + 1) / 2;
  for (int p = 0; p < rows; p += R) {
    const int n = std::min(R, rows - p);
    for (int q = 0; q < kp; q++) {
      const bool pair = 2 * q + 1 < kc;
      const float* s = src + (long)(r0 + p) * rs + (long)(k0 + 2 * q) * ks;
      for (int r = 0; r < n; r++) {
        dst[2 * r] = bf16_bits(s[(long)r * rs]);
        dst[2 * r + 1] = pair ? bf16_bits(s[(long)r * rs + ks]) : 0;
      }
      std::memset(dst + 2 * n, 0, (size_t)(R - n) * 2 * sizeof(uint16_t));
      dst += 2 * R;
    }
  }
}

// Word shuffle: 16 words of x0 and 16 of x1 (one cvtne2ps) → 16 pairs (x0[i], x1[i]).
alignas(64) static const uint16_t ZIP16[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                               8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

static inline __mmask16 first16(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << std::max(n, 0)) - 1); }

// Eight rows' 16 pairs (32-bit words) r[0 … 7] → out[q·stride + i] = r[i][q]: a transpose of
// 32-bit words in registers (unpacks of 32 and 64 bits, then 128-bit lanes picked in pairs).
static inline void transpose8x16(const __m512i (&r)[8], uint32_t* out, long stride) {
  __m512i t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);      // lane L: r2i[4L], r2i+1[4L], r2i[4L+1], r2i+1[4L+1]
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);  // … [4L+2], [4L+3]
  }
  for (int h = 0; h < 2; h++) {  // rows 4h … 4h + 3
    const __m512i *a = t + 4 * h;
    u[4 * h + 0] = _mm512_unpacklo_epi64(a[0], a[2]);  // lane L: q = 4L
    u[4 * h + 1] = _mm512_unpackhi_epi64(a[0], a[2]);  // q = 4L + 1
    u[4 * h + 2] = _mm512_unpacklo_epi64(a[1], a[3]);  // q = 4L + 2
    u[4 * h + 3] = _mm512_unpackhi_epi64(a[1], a[3]);  // q = 4L + 3
  }
  // q = 4L + j: rows 0–3 are lane L of u[j], rows 4–7 lane L of u[4 + j].
  const __m512i lanes01 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), lanes23 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  for (int j = 0; j < 4; j++) {
    const __m512i x = _mm512_permutex2var_epi64(u[j], lanes01, u[4 + j]);  // q = j, then q = 4 + j
    const __m512i y = _mm512_permutex2var_epi64(u[j], lanes23, u[4 + j]);  // q = 8 + j, then q = 12 + j
    _mm256_storeu_si256((__m256i*)(out + (long)j * stride), _mm512_castsi512_si256(x));
    _mm256_storeu_si256((__m256i*)(out + (long)(4 + j) * stride), _mm512_extracti64x4_epi64(x, 1));
    _mm256_storeu_si256((__m256i*)(out + (long)(8 + j) * stride), _mm512_castsi512_si256(y));
    _mm256_storeu_si256((__m256i*)(out + (long)(12 + j) * stride), _mm512_extracti64x4_epi64(y, 1));
  }
}

// k contiguous (ks = 1: op(A) = A, op(B) = Bᵀ): each row's 32 floats become 16 pairs in
// one instruction; a pair is 32 bits, so the panel's (pair, row) order is a transpose of
// 32-bit words, eight rows at a time in registers (R is 8 or 32).
static void pack_bf16_krows(const float* src, long rs, int r0, int rows, int k0, int kc, int R, uint16_t* dst) {
  const int kp = (kc + 1) / 2;
  uint32_t* d32 = reinterpret_cast<uint32_t*>(dst);
  for (int p = 0; p < rows; p += R) {
    const int n = std::min(R, rows - p);
    uint32_t* panel = d32 + (long)(p / R) * kp * R;
    for (int q0 = 0; q0 < kp; q0 += 16) {
      const int qs = std::min(16, kp - q0), k = 2 * q0;
      for (int g = 0; g < R; g += 8) {
        __m512i r8[8];
        for (int i = 0; i < 8; i++) {
          if (g + i >= n) { r8[i] = _mm512_setzero_si512(); continue; }
          const float* s = src + (long)(r0 + p + g + i) * rs + k0 + k;
          const __m512 lo = _mm512_maskz_loadu_ps(first16(kc - k), s);
          const __m512 hi = _mm512_maskz_loadu_ps(first16(kc - k - 16), s + 16);
          r8[i] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        }
        uint32_t* o = panel + (long)q0 * R + g;
        if (qs == 16) { transpose8x16(r8, o, R); continue; }
        alignas(64) uint32_t blk[8][16];
        for (int i = 0; i < 8; i++) _mm512_store_si512(blk[i], r8[i]);
        for (int q = 0; q < qs; q++)
          for (int i = 0; i < 8; i++) o[(long)q * R + i] = blk[i][q];
      }
    }
  }
}

// Rows contiguous (rs = 1: op(A) = Aᵀ, op(B) = B): for each pair, 16 rows at k and 16 at
// k + 1 are two vector loads; one conversion and one word shuffle interleave them into 16 pairs.
static void pack_bf16_kcols(const float* src, long ks, int r0, int rows, int k0, int kc, int R, uint16_t* dst) {
  const int kp = (kc + 1) / 2;
  const __m512i idx = _mm512_load_si512(ZIP16);
  for (int p = 0; p < rows; p += R) {
    const int n = std::min(R, rows - p);
    for (int q = 0; q < kp; q++) {
      const bool pair = 2 * q + 1 < kc;
      const float* s = src + (r0 + p) + (long)(k0 + 2 * q) * ks;
      for (int r = 0; r < R; r += 16) {
        const int w = std::min(16, R - r);           // rows this store covers (R is 8 or a multiple of 16)
        const __mmask16 m = first16(std::min(w, n - r));
        const __m512 x0 = _mm512_maskz_loadu_ps(m, s + r);
        const __m512 x1 = pair ? _mm512_maskz_loadu_ps(m, s + ks + r) : _mm512_setzero_ps();
        const __m512i z = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
        _mm512_mask_storeu_epi16(dst + 2 * r, w >= 16 ? ~(__mmask32)0 : (__mmask32)((1ull << (2 * w)) - 1), z);
      }
      dst += 2 * R;
    }
  }
}

// pack_bf16_kcols for A's panels (R = 8), two panels at a time: 16 rows fill the vectors that
// 8 rows left half empty, and the 16 pairs go out as two 256-bit stores, one per panel. This is
// op(A) = Aᵀ, the weight gradients' dW = dYᵀ·X, whose A (dY: M × K = 50 257 × 1 024 at G's
// head) is packed once per slice of N.
static void pack_bf16_kcols8(const float* src, long ks, int r0, int rows, int k0, int kc, uint16_t* dst) {
  constexpr int R = 8;
  const int kp = (kc + 1) / 2;
  const __m512i idx = _mm512_load_si512(ZIP16);
  for (int p = 0; p < rows; p += 2 * R) {
    const int n = std::min(2 * R, rows - p);  // rows of these two panels that exist in the source
    const bool second = n > R;                 // whether the second panel is there to be written
    const __mmask16 m = first16(n);
    uint16_t* d0 = dst + (long)(p / R) * kp * 2 * R;
    uint16_t* d1 = d0 + (long)kp * 2 * R;
    const float* s = src + r0 + p + (long)k0 * ks;
    for (int q = 0; q < kp; q++, s += 2 * ks) {
      const __m512 x0 = _mm512_maskz_loadu_ps(m, s);
      const __m512 x1 = 2 * q + 1 < kc ? _mm512_maskz_loadu_ps(m, s + ks) : _mm512_setzero_ps();
      const __m512i z = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
      _mm256_storeu_si256((__m256i*)(d0 + (long)q * 2 * R), _mm512_castsi512_si256(z));
      if (second) _mm256_storeu_si256((__m256i*)(d1 + (long)q * 2 * R), _mm512_extracti64x4_epi64(z, 1));
    }
  }
}

static void pack_bf16(const float* src, long rs, long ks, int r0, int rows, int k0, int kc, int R, uint16_t* dst) {
  if (ks == 1 && R % 8 == 0) return pack_bf16_krows(src, rs, r0, rows, k0, kc, R, dst);
  if (rs == 1 && R == 8) return pack_bf16_kcols8(src, ks, r0, rows, k0, kc, dst);
  if (rs == 1 && R % 16 == 0) return pack_bf16_kcols(src, ks, r0, rows, k0, kc, R, dst);
  pack_bf16_scalar(src, rs, ks, r0, rows, k0, kc, R, dst);
}

// C tile (m ≤ MR rows, n ≤ NR cols) = alpha·Σ_k a_k b_kᵀ (+ C when add) (+ bias), from bf16-pair panels.
static void micro_bf16(int kc, const uint16_t* a, const uint16_t* b, float* c, long ldc, int m, int n, float alpha, bool add,
                       const float* bias) {
  vf acc[MR][NRV];
  for (int i = 0; i < MR; i++) for (int v = 0; v < NRV; v++) acc[i][v] = vf{};
  const int kp = (kc + 1) / 2;
  for (int q = 0; q < kp; q++) {
    __m512bh bv[NRV];
    for (int v = 0; v < NRV; v++) bv[v] = (__m512bh)_mm512_loadu_si512(b + v * VL * 2);
    for (int i = 0; i < MR; i++) {
      int32_t pairBits;
      std::memcpy(&pairBits, a + 2 * i, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pairBits);
      for (int v = 0; v < NRV; v++) acc[i][v] = (vf)_mm512_dpbf16_ps((__m512)acc[i][v], av, bv[v]);
    }
    a += 2 * MR;
    b += 2 * NR;
  }
  store_tile(acc, c, ldc, m, n, alpha, add, bias);
}

// The attention's pair products (gemm.h): operands converted once per head or tile, then
// multiplied in place, without the blocked GEMM's packing (they are already in cache).
void bf16_pairs_along_rows(const float* src, long ld, int m, int k, uint32_t* dst, long ldd) {
  const int kp = (k + 1) / 2;
  for (int i = 0; i < m; i++) {
    const float* s = src + (long)i * ld;
    for (int q0 = 0; q0 < kp; q0 += 16) {
      const int e = 2 * q0;
      const __m512 lo = _mm512_maskz_loadu_ps(first16(k - e), s + e);
      const __m512 hi = _mm512_maskz_loadu_ps(first16(k - e - 16), s + e + 16);
      _mm512_mask_storeu_epi32(dst + (long)i * ldd + q0, first16(kp - q0), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

void bf16_pairs_down_cols(const float* src, long ld, int k, int n, uint32_t* dst, long ldd) {
  const int kp = (k + 1) / 2;
  const __m512i idx = _mm512_load_si512(ZIP16);
  for (int q = 0; q < kp; q++) {
    const float* s0 = src + 2L * q * ld;
    const bool pair = 2 * q + 1 < k;
    for (int j = 0; j < n; j += 16) {
      const __mmask16 m = first16(n - j);
      const __m512 x0 = _mm512_maskz_loadu_ps(m, s0 + j);
      const __m512 x1 = pair ? _mm512_maskz_loadu_ps(m, s0 + ld + j) : _mm512_setzero_ps();
      _mm512_mask_storeu_epi32(dst + (long)q * ldd + j, m, _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(x1, x0)));
    }
  }
}

void gemm_pairs(int m, int n, int kp, const uint32_t* a, long ars, long acs, const uint32_t* b, long ldb, float* c, long ldc,
                float alpha, bool add) {
  for (int j0 = 0; j0 < n; j0 += NR) {
    const int nn = std::min(NR, n - j0);
    const __mmask16 m0 = first16(nn), m1 = first16(nn - VL);
    for (int i0 = 0; i0 < m; i0 += MR) {
      const int mm = std::min(MR, m - i0);
      const uint32_t* ar[MR];  // rows past m repeat the last one; their sums are not stored
      for (int i = 0; i < MR; i++) ar[i] = a + (long)(i0 + std::min(i, mm - 1)) * ars;
      vf acc[MR][NRV];
      for (int i = 0; i < MR; i++) for (int v = 0; v < NRV; v++) acc[i][v] = vf{};
      const uint32_t* bq = b + j0;
      for (int q = 0; q < kp; q++, bq += ldb) {
        const __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi32(m0, bq), b1 = (__m512bh)_mm512_maskz_loadu_epi32(m1, bq + VL);
        for (int i = 0; i < MR; i++) {
          const __m512bh av = (__m512bh)_mm512_set1_epi32((int)ar[i][(long)q * acs]);
          acc[i][0] = (vf)_mm512_dpbf16_ps((__m512)acc[i][0], av, b0);
          acc[i][1] = (vf)_mm512_dpbf16_ps((__m512)acc[i][1], av, b1);
        }
      }
      store_tile(acc, c + (long)i0 * ldc + j0, ldc, mm, nn, alpha, add, nullptr);
    }
  }
}
}}  // namespace attn::avx512bf16
#else
namespace attn { namespace avx512bf16 {
void bf16_pairs_along_rows(const float* src, long ld, int m, int k, uint32_t* dst, long ldd) { pairs_portable::bf16_pairs_along_rows(src, ld, m, k, dst, ldd); }
void bf16_pairs_down_cols(const float* src, long ld, int k, int n, uint32_t* dst, long ldd) { pairs_portable::bf16_pairs_down_cols(src, ld, k, n, dst, ldd); }
void gemm_pairs(int m, int n, int kp, const uint32_t* a, long ars, long acs, const uint32_t* b, long ldb, float* c, long ldc, float alpha,
                bool add) { pairs_portable::gemm_pairs(m, n, kp, a, ars, acs, b, ldb, c, ldc, alpha, add); }
void gemm(const Gemm& g, int threads) { portable::gemm(g, threads); }
void gemm_small(int m, int n, int k, const float* a, long ars, long acs, const float* b, long ldb, float* c, long ldc, float alpha,
                bool add) { portable::gemm_small(m, n, k, a, ars, acs, b, ldb, c, ldc, alpha, add); } } }
#endif
