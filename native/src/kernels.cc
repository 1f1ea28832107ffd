#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "vec.h"
#include "threadpool.h"

namespace attn {


// Split [0, n) into chunks of at least `grain` and run them on the pool.
template <class F>
static void parallel_range(long n, long grain, F&& fn) {
  const int threads = pool().size();
  const long chunks = std::max(1L, std::min<long>(threads, n / std::max(1L, grain)));
  if (chunks == 1) { fn(0L, n); return; }
  pool().run((int)chunks, [&](int c, int) {
    const long lo = n * c / chunks, hi = n * (c + 1) / chunks;
    fn(lo, hi);
  });
}

// The loops themselves live in vec_impl.inc, compiled once per instruction set;
// this file splits the work across the pool and combines partial results.

void layernorm_forward(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, int rows, int cols, float eps) {
  const VecKernels& k = vec();
  parallel_range(rows, 64, [&](long lo, long hi) { k.layernorm_forward(x, w, b, out, mean, rstd, lo, hi, cols, eps); });
}

void layernorm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx, float* dw,
                        float* db, int rows, int cols, bool acc) {
  // dx rows are independent; dw/db sum over rows, so each chunk keeps its own partial sums.
  const int threads = pool().size();
  const long chunks = std::max(1L, std::min<long>(threads, rows / 64));
  std::vector<float> part((size_t)chunks * 2 * cols, 0.f);
  const VecKernels& k = vec();
  auto body = [&](int c, int) {
    const long lo = (long)rows * c / chunks, hi = (long)rows * (c + 1) / chunks;
    float* pw = part.data() + (size_t)c * 2 * cols;
    k.layernorm_backward(x, w, mean, rstd, dy, dx, pw, pw + cols, lo, hi, cols, acc);
  };
  if (chunks == 1) body(0, 0); else pool().run((int)chunks, body);
  for (long c = 0; c < chunks; c++) {
    const float* pw = part.data() + (size_t)c * 2 * cols;
    if (dw) for (int j = 0; j < cols; j++) dw[j] += pw[j];
    if (db) for (int j = 0; j < cols; j++) db[j] += pw[cols + j];
  }
}

void rmsnorm_forward(const float* x, const float* w, float* out, float* rstd, int rows, int cols, float eps) {
  const VecKernels& k = vec();
  parallel_range(rows, 64, [&](long lo, long hi) { k.rmsnorm_forward(x, w, out, rstd, lo, hi, cols, eps); });
}

void rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw, int rows, int cols, bool acc) {
  // As layernorm_backward: dx rows are independent, dw sums over rows in per-chunk partial sums.
  const int threads = pool().size();
  const long chunks = std::max(1L, std::min<long>(threads, rows / 64));
  std::vector<float> part((size_t)chunks * cols, 0.f);
  const VecKernels& k = vec();
  auto body = [&](int c, int) {
    const long lo = (long)rows * c / chunks, hi = (long)rows * (c + 1) / chunks;
    k.rmsnorm_backward(x, w, rstd, dy, dx, part.data() + (size_t)c * cols, lo, hi, cols, acc);
  };
  if (chunks == 1) body(0, 0); else pool().run((int)chunks, body);
  if (dw)
    for (long c = 0; c < chunks; c++)
      for (int j = 0; j < cols; j++) dw[j] += part[(size_t)c * cols + j];
}

void silu_forward(const float* x, float* out, long n) {
  const VecKernels& k = vec();
  parallel_range(n, 1 << 14, [&](long lo, long hi) { k.silu_forward(x, out, lo, hi); });
}

void silu_backward(const float* x, const float* dy, float* dx, long n, bool acc) {
  const VecKernels& k = vec();
  parallel_range(n, 1 << 14, [&](long lo, long hi) { k.silu_backward(x, dy, dx, lo, hi, acc); });
}

void swiglu_forward(const float* g, const float* u, float* out, long n) {
  const VecKernels& k = vec();
  parallel_range(n, 1 << 14, [&](long lo, long hi) { k.swiglu_forward(g, u, out, lo, hi); });
}

void swiglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du, long n, bool acc_g, bool acc_u) {
  const VecKernels& k = vec();
  parallel_range(n, 1 << 14, [&](long lo, long hi) { k.swiglu_backward(g, u, dy, dg, du, lo, hi, acc_g, acc_u); });
}

void gelu_forward(const float* x, float* out, long n) {
  const VecKernels& k = vec();
  parallel_range(n, 1 << 14, [&](long lo, long hi) { k.gelu_forward(x, out, lo, hi); });
}

void gelu_backward(const float* x, const float* dy, float* dx, long n, bool acc) {
  const VecKernels& k = vec();
  parallel_range(n, 1 << 14, [&](long lo, long hi) { k.gelu_backward(x, dy, dx, lo, hi, acc); });
}

void softmax_forward(const float* x, float* out, int rows, int cols) {
  const VecKernels& k = vec();
  parallel_range(rows, std::max(1, 8192 / std::max(1, cols)), [&](long lo, long hi) { k.softmax_rows(x, out, lo, hi, cols); });
}

double cross_entropy_forward(const float* logits, const int32_t* targets, float* lse, int rows, int vocab, int ignore, int* count) {
  const int threads = pool().size();
  const long chunks = std::max(1L, std::min<long>(threads, (long)rows * vocab / 8192));
  std::vector<double> sums(chunks, 0.0);
  std::vector<int> counts(chunks, 0);
  const VecKernels& k = vec();
  auto body = [&](int c, int) {
    const long lo = (long)rows * c / chunks, hi = (long)rows * (c + 1) / chunks;
    sums[c] = k.cross_entropy_forward(logits, targets, lse, lo, hi, vocab, ignore, &counts[c]);
  };
  if (chunks == 1) body(0, 0); else pool().run((int)chunks, body);
  double sum = 0;
  *count = 0;
  for (long c = 0; c < chunks; c++) { sum += sums[c]; *count += counts[c]; }
  return sum;
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, float* dlogits, int rows, int vocab, int ignore,
                            float scale, bool acc) {
  const VecKernels& k = vec();
  parallel_range(rows, std::max(1, 8192 / std::max(1, vocab)),
                 [&](long lo, long hi) { k.cross_entropy_backward(logits, targets, lse, dlogits, lo, hi, vocab, ignore, scale, acc); });
}

void embedding_forward(const float* w, const int32_t* ids, float* out, int n, int dim) {
  for (int r = 0; r < n; r++) std::copy(w + (long)ids[r] * dim, w + (long)ids[r] * dim + dim, out + (long)r * dim);
}

void embedding_backward(const float* dout, const int32_t* ids, float* dw, int n, int dim) {
  // Serial: two rows with the same id would race if split across threads.
  for (int r = 0; r < n; r++) {
    float* d = dw + (long)ids[r] * dim;
    const float* s = dout + (long)r * dim;
    for (int j = 0; j < dim; j++) d[j] += s[j];
  }
}

void dropout_forward(const float* x, float* out, float* mask, long n, double p, uint32_t seed) {
  const uint32_t threshold = (uint32_t)std::min(4294967295.0, std::floor(p * 4294967296.0));
  const float keep = (float)(1.0 / (1.0 - p));
  const VecKernels& k = vec();
  parallel_range(n, 1 << 15, [&](long lo, long hi) { k.dropout_forward(x, out, mask, lo, hi, seed, threshold, keep); });
}

void dropout_backward(const float* dy, const float* mask, float* dx, long n, bool acc) {
  const VecKernels& k = vec();
  parallel_range(n, 1 << 15, [&](long lo, long hi) { k.dropout_backward(dy, mask, dx, lo, hi, acc); });
}

void adamw_step(float* p, const float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float wd, int step) {
  const double bc1 = 1 - std::pow((double)beta1, step), bc2 = 1 - std::pow((double)beta2, step);
  const AdamConsts c{beta1, beta2, eps, (float)(lr / bc1), (float)std::sqrt(bc2), 1.f - lr * wd};
  const VecKernels& k = vec();
  parallel_range(n, 1 << 15, [&](long lo, long hi) { k.adamw(p, g, m, v, lo, hi, c); });
}

double sum_squares(const float* x, long n) {
  const VecKernels& k = vec();
  const long chunks = std::max(1L, std::min<long>(pool().size(), n / (1 << 16)));
  if (chunks == 1) return k.sum_squares(x, 0, n);
  std::vector<double> part(chunks, 0.0);
  pool().run((int)chunks, [&](int c, int) { part[c] = k.sum_squares(x, n * c / chunks, n * (c + 1) / chunks); });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

void scale_inplace(float* x, long n, float s) {
  const VecKernels& k = vec();
  parallel_range(n, 1 << 16, [&](long lo, long hi) { k.scale(x, lo, hi, s); });
}

void add(const float* a, const float* b, float* out, long n) {
  parallel_range(n, 1 << 15, [&](long lo, long hi) { vec().add(a, b, out, lo, hi); });
}

void col_sum_add(const float* src, long rows, long cols, float* dst) {
  const VecKernels& k = vec();
  const int threads = pool().size();
  if (threads == 1 || rows * cols < (1 << 15)) { k.col_sum(src, rows, cols, dst, 0, cols); return; }
  if (cols >= 256) {  // wide rows: split by columns, so that threads never add into the same dst element
    const long chunks = std::min<long>(threads, cols / 128);
    pool().run((int)chunks, [&](int c, int) { k.col_sum(src, rows, cols, dst, cols * c / chunks, cols * (c + 1) / chunks); });
    return;
  }
  // narrow rows (a bias of 128): split by rows into partial sums, then add those
  std::vector<float> part((size_t)threads * cols, 0.f);
  pool().run(threads, [&](int c, int) {
    const long lo = rows * c / threads, hi = rows * (c + 1) / threads;
    k.col_sum(src + lo * cols, hi - lo, cols, part.data() + (size_t)c * cols, 0, cols);
  });
  for (int c = 0; c < threads; c++) k.add(dst, part.data() + (size_t)c * cols, dst, 0, cols);
}

void add_rows(const float* a, const float* b, float* out, long rows, long cols) {
  const VecKernels& k = vec();
  parallel_range(rows, std::max(1L, 8192 / std::max(1L, cols)), [&](long lo, long hi) { k.add_rows(a, b, out, lo, hi, cols); });
}

void rope(const float* x, float* out, const float* cos, const float* sin, int B, int T, int H, int D, bool half, bool per_row, int direction,
          bool acc) {
  const int hd = D / 2;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const long a = (long)(per_row ? b * T + t : t) * hd;
      for (int h = 0; h < H; h++) {
        const long o = ((long)(b * T + t) * H + h) * D;
        for (int i = 0; i < hd; i++) {
          const float c = cos[a + i], s = direction * sin[a + i];
          const long i0 = o + (half ? i : 2 * i), i1 = o + (half ? i + hd : 2 * i + 1);
          const float x0 = x[i0], x1 = x[i1];
          const float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
          out[i0] = acc ? out[i0] + y0 : y0;
          out[i1] = acc ? out[i1] + y1 : y1;
        }
      }
    }
}

}  // namespace attn
