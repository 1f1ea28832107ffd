// One decoder layer of a pre-norm Llama-family model for one new token, fused
// into a single call: the per-token work of batch-1 decoding is a dozen small
// products and element-wise steps per layer, and issuing each from JavaScript
// costs more than the arithmetic (a GEMV of a 576×192 q4_0 matrix takes ~5 µs).
// The js twin is src/backend/decoder_step.ts (the same steps as backend calls).
#pragma once
#include <cstdint>

namespace attn {

// A weight matrix W [N, K] of y = x·Wᵀ + bias, in one of the formats decoding reads.
enum StepLinearKind { STEP_F32 = -1, STEP_INT8 = -2 };  // otherwise a ggml quant type (QuantType)
struct StepLinear {
  int kind;             // STEP_F32, STEP_INT8, or QUANT_Q4_0 / QUANT_Q8_0 / QUANT_Q4_K / QUANT_Q6_K
  const void* w;        // float [N, K], int8 [N, K], or the quantized blocks
  const float* scale;   // STEP_INT8: one per row; else null
  const float* bias;    // optional, length N
  int N, K;
  int interleave;       // quant types: 0 (ggml's layout) or INTERLEAVE
};

struct DecoderLayerStep {
  const float* input_norm;  // RMSNorm gains [C]
  const float* post_norm;   // [C]
  StepLinear q, k, v, o, gate, up, down;
  int C, H, Hkv, D, F;
  float eps;
  bool rope_half;  // rotate_half pairs (i, i + D/2); else interleaved (2i, 2i + 1)
};

// The output head after the last layer: logits [N] = RMSNorm(x)·Wᵀ (+ bias).
struct DecoderHead {
  const float* norm;  // RMSNorm gains [K]
  float eps;
  StepLinear out;     // [vocab, C]
};

// Scratch for one step; sizes from decoder_step_scratch_floats.
long decoder_step_scratch_floats(const DecoderLayerStep& s);

// x [C] += attention(RMSNorm(x)); x += SwiGLU MLP(RMSNorm(x)), for the token
// at cache slot `past` of a one-row cache kc, vc [cap, Hkv·D] (its key and
// value written there), attending to slots start … past. cos, sin [D/2]: the
// rotation's angles at this token's position.
void decoder_layer_step(const DecoderLayerStep& s, float* x, float* kc, float* vc, int cap, int past, int start, const float* cos,
                        const float* sin, float* scratch);

// The same for layers 0 … n − 1 in turn (layer l's cache kcs[l], vcs[l]), as one job for the thread
// pool: one hand-off a token instead of one a layer. False (nothing done) unless every layer has
// the first one's sizes and matrix types (scratch: decoder_step_scratch_floats of the first).
// With a head, the same job then writes logits [head->out.N] from the final x (its rows split
// by weight bytes like the layers'): the token's whole forward is one hand-off to the pool.
bool decoder_layers_step(const DecoderLayerStep* const* layers, int n, float* x, float* const* kcs, float* const* vcs, int cap, int past, int start,
                         const float* cos, const float* sin, float* scratch, const DecoderHead* head = nullptr, float* logits = nullptr);


// Where a decode call's time goes (off unless set): with `out` non-null, every decoder_layers_step
// adds into it: out[0] calls, out[1] call wall ns; then per task t (20 values from 2 + 20·t), for
// each phase kind k (qkv, attend, o, mlp, down, head) at 3·k: ns in its chunks, ns in its `first`
// (RMSNorm and quantizing x), ns waiting at the phase's end; at 18 the task's wall ns, at 19 its
// thread's CPU ns. `tasks`: how many tasks out holds (more are not recorded).
constexpr int DECODE_TRACE_PER_TASK = 20;
void set_decode_trace(double* out, int tasks);

// out[r] = the index of the largest value of row r of x [rows, cols], the first on ties, as a
// float: the js backend's argmaxRows (and generate's argmax) exactly, NaN included (a value wins
// only when it is greater than the best so far, so a NaN never wins, and a row whose first value
// is NaN gives 0). Greedy decoding's pick from a token's scores, in AVX-512 where the CPU has it.
void argmax_rows(const float* x, long rows, long cols, float* out);

}  // namespace attn
