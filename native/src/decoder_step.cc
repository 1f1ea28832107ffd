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
  rope(q, q, cos, sin, 1, 1, s.H, s.D, s.rope_half, false, 1, false);
  rope(k, k, cos, sin, 1, 1, s.Hkv, s.D, s.rope_half, false, 1, false);
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
