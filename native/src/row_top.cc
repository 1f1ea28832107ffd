// row_top.h: the scan, one copy per instruction set (row_top_impl.inc), and the rerank.
#include "row_top.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu.h"
#include "threadpool.h"

namespace attn {

namespace portable {
#include "row_top_impl.inc"
}  // namespace portable

#if defined(__x86_64__)
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define ROW_TOP_AVX2 1
namespace avx2 {
#include "row_top_impl.inc"
}  // namespace avx2
#undef ROW_TOP_AVX2
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,fma")
#define ROW_TOP_AVX512 1
namespace avx512 {
#include "row_top_impl.inc"
}  // namespace avx512
#undef ROW_TOP_AVX512
#pragma GCC pop_options
#else
namespace avx2 { int row_top(const RowTop& t, int threads) { return portable::row_top(t, threads); } }
namespace avx512 { int row_top(const RowTop& t, int threads) { return portable::row_top(t, threads); } }
#endif

int row_top(const RowTop& t) {
  const int threads = pool().size();
  switch (current_isa()) {
    case Isa::Avx512: return avx512::row_top(t, threads);
    case Isa::Avx2: return avx2::row_top(t, threads);
    default: return portable::row_top(t, threads);
  }
}

int row_top_of(const float* q, const float* m, int width, const int32_t* candidates, int count, int k, int32_t* rows, float* scores) {
  if (k > count) k = count;
  if (k <= 0) return 0;
  // The candidates' rows are scattered over the matrix: ask for the next ones while this one is summed.
  constexpr int AHEAD = 4;
  for (int i = 0; i < AHEAD && i < count; i++)
    for (int j = 0; j < width; j += 16) __builtin_prefetch(m + (long)candidates[i] * width + j);
  portable::Heap h{scores, rows, 0, k};
  for (int i = 0; i < count; i++) {
    if (i + AHEAD < count)
      for (int j = 0; j < width; j += 16) __builtin_prefetch(m + (long)candidates[i + AHEAD] * width + j);
    const float* x = m + (long)candidates[i] * width;
    // Eight partial sums (a vector's worth), then the tail.
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int j = 0;
    for (; j + 8 <= width; j += 8)
      for (int l = 0; l < 8; l++) acc[l] += q[j + l] * x[j + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < width; j++) s += q[j] * x[j];
    h.push(s, candidates[i]);
  }
  // Best first.
  for (int end = h.size - 1; end > 0; end--) {
    const float s = h.s[end]; const int32_t r = h.r[end];
    h.s[end] = h.s[0]; h.r[end] = h.r[0];
    int i = 0;
    for (;;) {
      const int l = 2 * i + 1;
      if (l >= end) break;
      const int c = l + 1 < end && portable::worse(h.s[l + 1], h.r[l + 1], h.s[l], h.r[l]) ? l + 1 : l;
      if (!portable::worse(h.s[c], h.r[c], s, r)) break;
      h.s[i] = h.s[c]; h.r[i] = h.r[c]; i = c;
    }
    h.s[i] = s; h.r[i] = r;
  }
  return h.size;
}

}  // namespace attn
