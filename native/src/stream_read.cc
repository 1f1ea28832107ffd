// Memory read bandwidth: every byte of a large buffer read once with the
// widest loads the CPU has, split across the pool's threads, and folded into
// one value (so the compiler cannot skip the loads). A decode step of a
// quantized model can go no faster than its weight bytes / this rate.
#include "stream_read.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "threadpool.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace attn {

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static uint64_t fold_avx512(const uint8_t* p, long n) {
  // Four independent accumulators keep four loads in flight per iteration.
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  long i = 0;
  for (; i + 256 <= n; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_loadu_si512(p + i + 192));
  }
  const __m512i a = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  uint64_t lanes[8];
  _mm512_storeu_si512(lanes, a);
  uint64_t s = 0;
  for (uint64_t v : lanes) s ^= v;
  for (; i < n; i++) s ^= p[i];
  return s;
}
#endif

static uint64_t fold_portable(const uint8_t* p, long n) {
  uint64_t s = 0;
  long i = 0;
  for (; i + 8 <= n; i += 8) { uint64_t v; std::memcpy(&v, p + i, 8); s ^= v; }
  for (; i < n; i++) s ^= p[i];
  return s;
}

static double thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

uint64_t stream_read(const uint8_t* p, long n, double* timing) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  static const bool wide = __builtin_cpu_supports("avx512f");
  auto fold = wide ? fold_avx512 : fold_portable;
#else
  auto fold = fold_portable;
#endif
  const int threads = pool().size();
  std::vector<uint64_t> part(threads, 0);
  // Contiguous slices, 4 KB aligned, one per thread.
  const long per = ((n + threads - 1) / threads + 4095) / 4096 * 4096;
  const auto t0 = std::chrono::steady_clock::now();
  pool().run(threads, [&](int t, int thread) {
    const long a = std::min(n, (long)t * per), b = std::min(n, a + per);
    if (!timing) {
      part[t] = fold(p + a, b - a);
      return;
    }
    // Who ran slice t, when it started and ended (ns after the call began), and its CPU time:
    // shows whether the threads overlapped or one ran after the other (bench/stream_read.ts).
    const double c0 = thread_cpu_ns();
    const double s = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    part[t] = fold(p + a, b - a);
    double* r = timing + 4 * t;
    r[0] = thread;
    r[1] = s;
    r[2] = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    r[3] = thread_cpu_ns() - c0;
  });
  uint64_t s = 0;
  for (uint64_t v : part) s ^= v;
  return s;
}

}  // namespace attn
