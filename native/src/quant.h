// y = x·Wᵀ + bias with W block-quantized in ggml's layouts (GGUF tensors as
// stored): q8_0 and q4_0 multiplied with integer dot products against
// activations quantized to 8-bit blocks (as llama.cpp does), q4_k and q6_k
// dequantized a row at a time. See quant_impl.inc; the js twin is
// src/backend/js/quantized.ts.
#pragma once
#include <cstdint>

namespace attn {

// ggml's type numbers (the same numbers GGUF files store).
enum QuantType { QUANT_Q4_0 = 2, QUANT_Q8_0 = 8, QUANT_Q4_K = 12, QUANT_Q6_K = 14 };

struct QuantLinear {
  int type;
  int M, N, K;          // x [M, K], W [N, K], y [M, N]
  const float* x;
  const uint8_t* w;     // N rows of K / block_elements blocks
  const float* bias;    // optional, length N
  float* y;
};

// The activations as 8-bit blocks of 32: q, one scale d per block, and for
// each block 8 int32 lanes corr[l] = −o·Σ q[4l … 4l+3], o the offset that
// makes the weight type's bytes unsigned (see quant_impl.inc).
struct QuantActs {
  const int8_t* q;
  const float* d;
  const float* d8;  // each block's d repeated 8 times (one per int32 lane)
  const int32_t* corr;
  int blocks;  // per row: K / 32
};

// Rows [n0, n1) of y, with the activations already quantized (q8_0 / q4_0 only).
using QuantRowsFn = void (*)(const QuantLinear& g, const QuantActs& a, int n0, int n1);

void linear_quantized(const QuantLinear& g);

namespace portable { void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1); }
namespace avx2 { void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1); }
namespace avx512 {
void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1);
void quant_rows_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1);
}

}  // namespace attn
