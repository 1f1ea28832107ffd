// y = x·Wᵀ + bias with W block-quantized in ggml's layouts (GGUF tensors as
// stored): q8_0 and q4_0 multiplied with integer dot products against
// activations quantized to 8-bit blocks (as llama.cpp does), q4_k and q6_k
// dequantized a row at a time. See quant_impl.inc; the js twin is
// src/backend/js/quantized.ts.
#pragma once
#include <cstdint>
#include <vector>

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
  // 0: ggml's layout (each row's blocks in turn). 16 (q4_0, q8_0, N a multiple
  // of 16): rows interleaved in groups of 16, as interleave_rows16 leaves them.
  int interleave = 0;
};

// The interleaved layout, for decoding at memory speed on AVX-512 VNNI: the
// 16 rows of a group are stored block by block, each block of the group as
//   16 f16 scales (32 bytes: row r's at 2r), then the rows' quant bytes in
//   64-byte slices, slice i holding 4 bytes of each row (row r's bytes 4i …
//   4i+3 at 4r): 4 slices for q4_0 (16 bytes of nibbles a row), 8 for q8_0.
// A slice is one zmm register whose 16 int32 lanes are the 16 rows, so one
// vpdpbusd against 4 activation bytes broadcast to every lane advances all
// 16 dot products, with no shuffle; the byte count equals ggml's (in place).
constexpr int INTERLEAVE = 16;
// Rewrite W [N, K] (q4_0 or q8_0, N a multiple of 16) in place from ggml's layout into the interleaved one.
void interleave_rows16(int type, uint8_t* w, int N, int K);
// Whether the kernels of the current ISA run faster on interleaved rows.
bool prefers_interleaved();

// The activations as 8-bit blocks of 32: q, one scale d per block, and for
// each block 8 int32 lanes corr[l] = −o·Σ q[4l … 4l+3], o the offset that
// makes the weight type's bytes unsigned (see quant_impl.inc).
struct QuantActs {
  const int8_t* q;
  const float* d;
  const float* d8;  // each block's d repeated 8 times (one per int32 lane)
  const int32_t* corr;
  const int32_t* corr1;  // per block: −o·Σ q (the interleaved kernels' offset correction)
  int blocks;  // per row: K / 32
};

// Rows [n0, n1) of y, with the activations already quantized (q8_0 / q4_0 only).
using QuantRowsFn = void (*)(const QuantLinear& g, const QuantActs& a, int n0, int n1);

void linear_quantized(const QuantLinear& g);

// The pieces of linear_quantized, for callers that share one quantized activation
// between several products and split their rows among threads themselves (the
// fused decode step, decoder_step.cc).
struct QuantActsBuf {
  std::vector<int8_t> q;
  std::vector<float> d, d8;
  std::vector<int32_t> corr, corr1;
  QuantActs acts{nullptr, nullptr, nullptr, nullptr, nullptr, 0};
};
// x [M, K] as 8-bit blocks for products with weights of `type` (q8_0 and q4_0 differ
// in the offset; other types read the floats and need none): buf.acts.
const QuantActs& quantize_activations(int type, const float* x, int M, int K, QuantActsBuf& buf);
// The same in two steps, so that threads can fill one buffer's blocks in parallel: size buf for
// [M, K] (its acts point into it), then quantize blocks b0 … b1 − 1 of x (block b: x[32b … 32b + 31]).
// Every block is quantized on its own, so the result does not depend on how the blocks are split.
const QuantActs& prepare_activations(int type, int M, int K, QuantActsBuf& buf);
void quantize_activation_blocks(int type, const float* x, long b0, long b1, QuantActsBuf& buf);
// Rows [n0, n1) of y on the calling thread, with the activations quantized by
// quantize_activations (interleaved W: n0, n1 multiples of INTERLEAVE, or n1 = N).
void linear_quantized_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1);

namespace portable { void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1); }
namespace avx2 { void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1); }
namespace avx512 {
// quant.cc's activation quantizer, 32 values per two zmm: the same float steps, so the same bytes.
void quantize_acts(const float* x, long blocks, int offset, int8_t* q, float* d, float* d8, int32_t* corr, int32_t* corr1);
void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1);
void quant_rows_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1);
// The interleaved layout (g.interleave == 16), n0 and n1 multiples of 16.
void quant_rows16_vnni(const QuantLinear& g, const QuantActs& a, int n0, int n1);
}

}  // namespace attn
