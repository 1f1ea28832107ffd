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

void layernorm_forward(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, int rows, int cols, float eps) {
  parallel_range(rows, 64, [&](long lo, long hi) {
    for (long r = lo; r < hi; r++) {
      const float* xr = x + r * cols;
      double m = 0;
      for (int j = 0; j < cols; j++) m += xr[j];
      m /= cols;
      double var = 0;
      for (int j = 0; j < cols; j++) { double d = xr[j] - m; var += d * d; }
      var /= cols;
      const float s = (float)(1.0 / std::sqrt(var + eps));
      const float mf = (float)m;
      mean[r] = mf;
      rstd[r] = s;
      float* o = out + r * cols;
      for (int j = 0; j < cols; j++) o[j] = (xr[j] - mf) * s * (w ? w[j] : 1.f) + (b ? b[j] : 0.f);
    }
  });
}

void layernorm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx, float* dw, float* db, int rows, int cols) {
  // dx rows are independent; dw/db sum over rows, so each thread keeps its own partial sums.
  const int threads = pool().size();
  std::vector<float> part((size_t)threads * 2 * cols, 0.f);
  const long chunks = std::max(1L, std::min<long>(threads, rows / 64));
  auto body = [&](int c, int) {
    const long lo = (long)rows * c / chunks, hi = (long)rows * (c + 1) / chunks;
    float* pw = part.data() + (size_t)c * 2 * cols;
    float* pb = pw + cols;
    for (long r = lo; r < hi; r++) {
      const float* xr = x + r * cols;
      const float* g = dy + r * cols;
      const float m = mean[r], s = rstd[r];
      double gm = 0, gnm = 0;
      for (int j = 0; j < cols; j++) {
        const float n = (xr[j] - m) * s;
        const float gj = g[j] * (w ? w[j] : 1.f);
        gm += gj;
        gnm += gj * n;
        pw[j] += g[j] * n;
        pb[j] += g[j];
      }
      const float gmf = (float)(gm / cols), gnmf = (float)(gnm / cols);
      float* d = dx + r * cols;
      for (int j = 0; j < cols; j++) {
        const float n = (xr[j] - m) * s;
        d[j] += s * (g[j] * (w ? w[j] : 1.f) - gmf - n * gnmf);
      }
    }
  };
  if (chunks == 1) body(0, 0); else pool().run((int)chunks, body);
  for (long c = 0; c < chunks; c++) {
    const float* pw = part.data() + (size_t)c * 2 * cols;
    if (dw) for (int j = 0; j < cols; j++) dw[j] += pw[j];
    if (db) for (int j = 0; j < cols; j++) db[j] += pw[cols + j];
  }
}

void gelu_forward(const float* x, float* out, long n) {
  parallel_range(n, 1 << 14, [&](long lo, long hi) { vec().gelu_forward(x, out, lo, hi); });
}

void gelu_backward(const float* x, const float* dy, float* dx, long n) {
  parallel_range(n, 1 << 14, [&](long lo, long hi) { vec().gelu_backward(x, dy, dx, lo, hi); });
}

void softmax_forward(const float* x, float* out, int rows, int cols) {
  parallel_range(rows, 32, [&](long lo, long hi) {
    for (long r = lo; r < hi; r++) {
      const float* xr = x + r * cols;
      float* o = out + r * cols;
      float mx = -INFINITY;
      for (int j = 0; j < cols; j++) mx = std::max(mx, xr[j]);
      if (mx == -INFINITY) { std::fill(o, o + cols, 0.f); continue; }
      double sum = 0;
      for (int j = 0; j < cols; j++) { o[j] = std::exp(xr[j] - mx); sum += o[j]; }
      const float inv = (float)(1.0 / sum);
      for (int j = 0; j < cols; j++) o[j] *= inv;
    }
  });
}

double cross_entropy_forward(const float* logits, const int32_t* targets, float* lse, int rows, int vocab, int ignore, int* count) {
  const int threads = pool().size();
  std::vector<double> sums(threads, 0.0);
  std::vector<int> counts(threads, 0);
  const long chunks = std::max(1L, std::min<long>(threads, rows / 16));
  auto body = [&](int c, int) {
    const long lo = (long)rows * c / chunks, hi = (long)rows * (c + 1) / chunks;
    for (long r = lo; r < hi; r++) {
      const float* l = logits + r * vocab;
      float mx = -INFINITY;
      for (int j = 0; j < vocab; j++) mx = std::max(mx, l[j]);
      double s = 0;
      for (int j = 0; j < vocab; j++) s += std::exp((double)l[j] - mx);
      const double z = mx + std::log(s);
      lse[r] = (float)z;
      if (targets[r] == ignore) continue;
      sums[c] += z - l[targets[r]];
      counts[c]++;
    }
  };
  if (chunks == 1) body(0, 0); else pool().run((int)chunks, body);
  double sum = 0;
  *count = 0;
  for (long c = 0; c < chunks; c++) { sum += sums[c]; *count += counts[c]; }
  return sum;
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, float* dlogits, int rows, int vocab, int ignore, float scale) {
  parallel_range(rows, 16, [&](long lo, long hi) {
    for (long r = lo; r < hi; r++) {
      const int t = targets[r];
      if (t == ignore) continue;
      const float* l = logits + r * vocab;
      float* d = dlogits + r * vocab;
      const float z = lse[r];
      for (int j = 0; j < vocab; j++) d[j] += scale * std::exp(l[j] - z);
      d[t] -= scale;
    }
  });
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

void adamw_step(float* p, const float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float wd, int step) {
  const double bc1 = 1 - std::pow((double)beta1, step), bc2 = 1 - std::pow((double)beta2, step);
  const float stepSize = (float)(lr / bc1), bc2Sqrt = (float)std::sqrt(bc2), decay = 1.f - lr * wd;
  parallel_range(n, 1 << 14, [&](long lo, long hi) {
    for (long i = lo; i < hi; i++) {
      const float gi = g[i];
      m[i] = beta1 * m[i] + (1 - beta1) * gi;
      v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
      const float denom = std::sqrt(v[i]) / bc2Sqrt + eps;
      p[i] = p[i] * decay - stepSize * (m[i] / denom);
    }
  });
}

double sum_squares(const float* x, long n) {
  double s = 0;
  for (long i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

void scale_inplace(float* x, long n, float s) {
  for (long i = 0; i < n; i++) x[i] *= s;
}

void add(const float* a, const float* b, float* out, long n) {
  parallel_range(n, 1 << 15, [&](long lo, long hi) { vec().add(a, b, out, lo, hi); });
}

void col_sum_add(const float* src, long rows, long cols, float* dst) {
  // Split by columns so that threads never add into the same dst element.
  const long chunks = cols >= 256 ? std::min<long>(pool().size(), cols / 128) : 1;
  if (chunks <= 1) { vec().col_sum(src, rows, cols, dst, 0, cols); return; }
  pool().run((int)chunks, [&](int c, int) { vec().col_sum(src, rows, cols, dst, cols * c / chunks, cols * (c + 1) / chunks); });
}

void add_rows(const float* a, const float* b, float* out, long rows, long cols) {
  parallel_range(rows, 64, [&](long lo, long hi) {
    for (long r = lo; r < hi; r++)
      for (long j = 0; j < cols; j++) out[r * cols + j] = a[r * cols + j] + b[j];
  });
}

}  // namespace attn
