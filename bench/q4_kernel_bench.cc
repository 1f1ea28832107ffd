// Microbench (not part of the build or the tests): the Q4_0 one-row decode kernel (interleaved
// layout, quant_rows16_vnni with M = 1) against the streaming read (stream_read) over the SAME
// bytes, in one process, arms interleaved pass by pass so that a loaded machine hurts all alike.
//   g++ -O3 -std=c++17 -pthread -Inative/src bench/q4_kernel_bench.cc native/src/{quant,quant_portable,quant_avx2,quant_avx512,threadpool,stream_read,cpu}.cc -o /tmp/q4kb
//   K=2048 /tmp/q4kb THREADS PASSES MB ARM...
// ARM: stream (stream_read) | kernel (the rows front to back in 256 KB chunks) | a<KB> (two streams,
// the buffer's halves, alternating every KB, as the MLP's gate and up) | s<KB> (segments of KB in a
// shuffled order: a jump every KB). Prints wall GB/s and GB per CPU-second × threads per arm.
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant.h"
#include "stream_read.h"
#include "threadpool.h"

using namespace attn;

static double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  if (argc < 5) { std::fprintf(stderr, "usage: q4kb THREADS PASSES MB ARM...\n"); return 2; }
  const int threads = std::atoi(argv[1]), passes = std::atoi(argv[2]);
  const long mb = std::atol(argv[3]);
  set_threads(threads);
  const int K = getenv("K") ? std::atoi(getenv("K")) : 2048, blocks = K / 32;
  const long rowb = (long)blocks * 18, gb = 16 * rowb;
  const int N = (int)((mb << 20) / gb) * 16;
  const long bytes = (long)N * rowb;
  uint8_t* w = (uint8_t*)mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(w, bytes, MADV_HUGEPAGE);
  std::mt19937 rng(1);
  for (long i = 0; i < bytes; i += 4) { uint32_t v = rng(); std::memcpy(w + i, &v, 4); }
  // Finite f16 scales (random bits could be NaN/Inf; the speed does not depend on them).
  for (long b = 0; b < bytes / 288; b++) for (int r = 0; r < 16; r++) { uint16_t h = 0x2000 + (rng() & 0x3ff); std::memcpy(w + b * 288 + 2 * r, &h, 2); }
  std::vector<float> x(K), y(N);
  for (auto& v : x) v = (float)(rng() % 2001) / 1000.f - 1.f;
  QuantActsBuf buf;
  const QuantActs& a = quantize_activations(QUANT_Q4_0, x.data(), 1, K, buf);
  QuantLinear g{QUANT_Q4_0, 1, N, K, x.data(), w, nullptr, y.data()};
  g.interleave = 16;
  // Chunks of 256 KB claimed from one counter (as the fused decode's phases, roughly).
  const int chunk = (int)((256L << 10) / gb) * 16;
  auto kernel = [&]() {
    std::atomic<int> next{0};
    pool().run(threads, [&](int, int) {
      for (int c; (c = next.fetch_add(1)) * chunk < N;) linear_quantized_rows(g, a, c * chunk, std::min(N, (c + 1) * chunk));
    });
  };
  std::vector<std::string> arms(argv + 4, argv + argc);
  std::vector<std::vector<double>> gbps(arms.size()), gbcpu(arms.size());
  volatile uint64_t sink = 0;
  for (int p = -1; p < passes; p++)
    for (size_t i = 0; i < arms.size(); i++) {
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_s();
      if (arms[i] == "stream") sink = sink ^ stream_read(w, bytes, nullptr);
      else if (arms[i][0] == 'a') {
        const int seg = std::max(16, (int)((std::atol(arms[i].c_str() + 1) << 10) / gb) * 16);
        const int half = N / 32 * 16;
        for (int n0 = 0; n0 < half; n0 += seg) {
          linear_quantized_rows(g, a, n0, std::min(half, n0 + seg));
          linear_quantized_rows(g, a, half + n0, std::min(N, half + n0 + seg));
        }
      } else if (arms[i][0] == 's') {
        const int seg = std::max(16, (int)((std::atol(arms[i].c_str() + 1) << 10) / gb) * 16);
        std::vector<int> order;
        for (int n = 0; n < N; n += seg) order.push_back(n);
        std::shuffle(order.begin(), order.end(), std::mt19937(p + 7));
        for (int n0 : order) {
          const int n1 = std::min(N, n0 + seg);
          std::atomic<int> next{0};
          pool().run(threads, [&](int, int) {
            for (int c; (c = next.fetch_add(1)) * chunk < n1 - n0;) linear_quantized_rows(g, a, n0 + c * chunk, std::min(n1, n0 + (c + 1) * chunk));
          });
        }
      } else kernel();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (p >= 0) { gbps[i].push_back(bytes / s / 1e9); gbcpu[i].push_back(bytes / (cpu_s() - c0) / 1e9 * threads); }
    }
  std::printf("threads %d, %ld MB, %d passes, y[0] %g\n", threads, bytes >> 20, passes, y[0]);
  for (size_t i = 0; i < arms.size(); i++) {
    auto v = gbps[i];
    std::sort(v.begin(), v.end());
    auto c = gbcpu[i];
    std::sort(c.begin(), c.end());
    std::printf("%-8s median %.1f GB/s  best %.1f  worst %.1f | per CPU-s x threads: median %.1f best %.1f\n", arms[i].c_str(), v[v.size() / 2], v.back(), v.front(), c[c.size() / 2], c.back());
  }
}
