// The fused decode step of one Llama-family layer (decoder_step.h): the
// existing kernels (RMSNorm, the GEMV/quantized products, cached attention,
// SwiGLU) called in sequence on one scratch buffer, with RoPE and the cache
// write done inline. Each product still runs on the thread pool.
#include "decoder_step.h"

#include <cstring>

#include "gemm.h"
#include "gemv.h"
#include "kernels.h"
#include "quant.h"

namespace attn {

namespace {

// y [N] = x [K]·Wᵀ + bias, for one row x.
void linear_row(const StepLinear& l, const float* x, float* y) {
  if (l.kind == STEP_F32) {
    gemm(Gemm{false, true, 1, l.N, l.K, x, l.K, (const float*)l.w, l.K, y, l.N, 1.f, false, 1, 0, 0, 0, l.bias});
  } else if (l.kind == STEP_INT8) {
    gemv(Gemv<int8_t>{1, l.N, l.K, x, l.K, (const int8_t*)l.w, l.K, l.scale, l.bias, y, l.N, 1.f, false});
  } else {
    QuantLinear g{l.kind, 1, l.N, l.K, x, (const uint8_t*)l.w, l.bias, y};
    g.interleave = l.interleave;
    linear_quantized(g);
  }
}

// Rotate every head of x [heads·D] by the angles (cos, sin) [D/2], as js's rope with direction 1.
void rotate(float* x, int heads, int D, const float* cos, const float* sin, bool half_layout) {
  const int half = D / 2;
  for (int h = 0; h < heads; h++) {
    float* p = x + (long)h * D;
    for (int i = 0; i < half; i++) {
      const int i0 = half_layout ? i : 2 * i, i1 = half_layout ? i + half : 2 * i + 1;
      const float x0 = p[i0], x1 = p[i1];
      p[i0] = x0 * cos[i] - x1 * sin[i];
      p[i1] = x0 * sin[i] + x1 * cos[i];
    }
  }
}

}  // namespace

long decoder_step_scratch_floats(const DecoderLayerStep& s) {
  const long q = (long)s.H * s.D, kv = (long)s.Hkv * s.D;
  // h, q, k, v, attention out, gate, up, plus one float of RMSNorm's rstd
  return s.C + q + 2 * kv + q + 2L * s.F + 1;
}

void decoder_layer_step(const DecoderLayerStep& s, float* x, float* kc, float* vc, int cap, int past, int start, const float* cos,
                        const float* sin, float* scratch) {
  const long qw = (long)s.H * s.D, kvw = (long)s.Hkv * s.D;
  float* h = scratch;
  float* q = h + s.C;
  float* k = q + qw;
  float* v = k + kvw;
  float* att = v + kvw;
  float* gate = att + qw;
  float* up = gate + s.F;
  float* rstd = up + s.F;

  // Attention block: x += o_proj(attend(rope(q), cache ∪ rope(k), cache ∪ v)).
  rmsnorm_forward(x, s.input_norm, h, rstd, 1, s.C, s.eps);
  linear_row(s.q, h, q);
  linear_row(s.k, h, k);
  linear_row(s.v, h, v);
  rotate(q, s.H, s.D, cos, sin, s.rope_half);
  rotate(k, s.Hkv, s.D, cos, sin, s.rope_half);
  std::memcpy(kc + (long)past * kvw, k, kvw * sizeof(float));
  std::memcpy(vc + (long)past * kvw, v, kvw * sizeof(float));
  const int32_t starts[1] = {start};
  const float scale = 1.f / __builtin_sqrtf((float)s.D);
  attention_cached(q, kc, vc, att, starts, KvDims{1, 1, past, cap, s.H, s.Hkv, s.D, scale});
  linear_row(s.o, att, h);  // h is free again: o_proj's output
  add(x, h, x, s.C);

  // MLP block: x += down(silu(gate(n)) · up(n)), n = RMSNorm(x).
  rmsnorm_forward(x, s.post_norm, h, rstd, 1, s.C, s.eps);
  linear_row(s.gate, h, gate);
  linear_row(s.up, h, up);
  swiglu_forward(gate, up, gate, s.F);
  linear_row(s.down, gate, h);
  add(x, h, x, s.C);
}

}  // namespace attn
