// N-API bindings: unpack typed arrays and numbers, call a kernel. No logic here.
#include <napi.h>

#include <vector>
#include <sys/mman.h>

#include "cpu.h"
#include "decoder_step.h"
#include "gemm.h"
#include "gemv.h"
#include "kernels.h"
#include "quant.h"
#include "stream_read.h"
#include "panel.h"
#include "row_top.h"
#include "threadpool.h"

namespace {

float* F(const Napi::CallbackInfo& info, int i) {
  if (info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return info[i].As<Napi::Float32Array>().Data();
}
const int32_t* I32(const Napi::CallbackInfo& info, int i) { return info[i].As<Napi::Int32Array>().Data(); }
long L(const Napi::CallbackInfo& info, int i) { return (long)info[i].As<Napi::Number>().Int64Value(); }
int I(const Napi::CallbackInfo& info, int i) { return info[i].As<Napi::Number>().Int32Value(); }
float R(const Napi::CallbackInfo& info, int i) { return info[i].As<Napi::Number>().FloatValue(); }
bool B(const Napi::CallbackInfo& info, int i) { return info[i].As<Napi::Boolean>().Value(); }

// gemm(transA, transB, M, N, K, a, aOff, lda, b, bOff, ldb, c, cOff, ldc, alpha, accumulate, batch, sA, sB, sC, bias, bf16)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  attn::Gemm g;
  g.transA = B(info, 0); g.transB = B(info, 1);
  g.M = I(info, 2); g.N = I(info, 3); g.K = I(info, 4);
  g.a = F(info, 5) + L(info, 6); g.lda = L(info, 7);
  g.b = F(info, 8) + L(info, 9); g.ldb = L(info, 10);
  g.c = F(info, 11) + L(info, 12); g.ldc = L(info, 13);
  g.alpha = R(info, 14); g.accumulate = B(info, 15);
  g.batch = I(info, 16); g.strideA = L(info, 17); g.strideB = L(info, 18); g.strideC = L(info, 19);
  g.bias = info.Length() > 20 ? F(info, 20) : nullptr;
  g.bf16 = info.Length() > 21 && B(info, 21);
  attn::gemm(g);
  return info.Env().Undefined();
}

Napi::Value LayerNormForward(const Napi::CallbackInfo& info) {
  attn::layernorm_forward(F(info, 0), F(info, 1), F(info, 2), F(info, 3), F(info, 4), F(info, 5), I(info, 6), I(info, 7), R(info, 8));
  return info.Env().Undefined();
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  attn::layernorm_backward(F(info, 0), F(info, 1), F(info, 2), F(info, 3), F(info, 4), F(info, 5), F(info, 6), F(info, 7), I(info, 8), I(info, 9),
                          B(info, 10));
  return info.Env().Undefined();
}

Napi::Value RmsNormForward(const Napi::CallbackInfo& info) {
  attn::rmsnorm_forward(F(info, 0), F(info, 1), F(info, 2), F(info, 3), I(info, 4), I(info, 5), R(info, 6));
  return info.Env().Undefined();
}

Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  attn::rmsnorm_backward(F(info, 0), F(info, 1), F(info, 2), F(info, 3), F(info, 4), F(info, 5), I(info, 6), I(info, 7), B(info, 8));
  return info.Env().Undefined();
}

Napi::Value SiluForward(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  attn::silu_forward(x.Data(), F(info, 1), (long)x.ElementLength());
  return info.Env().Undefined();
}

Napi::Value SiluBackward(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  attn::silu_backward(x.Data(), F(info, 1), F(info, 2), (long)x.ElementLength(), B(info, 3));
  return info.Env().Undefined();
}

// swigluForward(gate, up, out)
Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  auto g = info[0].As<Napi::Float32Array>();
  attn::swiglu_forward(g.Data(), F(info, 1), F(info, 2), (long)g.ElementLength());
  return info.Env().Undefined();
}

// swigluBackward(gate, up, dy, dGate | null, dUp | null, accGate, accUp)
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  auto g = info[0].As<Napi::Float32Array>();
  attn::swiglu_backward(g.Data(), F(info, 1), F(info, 2), F(info, 3), F(info, 4), (long)g.ElementLength(), B(info, 5), B(info, 6));
  return info.Env().Undefined();
}

Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  attn::gelu_forward(x.Data(), F(info, 1), (long)x.ElementLength());
  return info.Env().Undefined();
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  attn::gelu_backward(x.Data(), F(info, 1), F(info, 2), (long)x.ElementLength(), B(info, 3));
  return info.Env().Undefined();
}

Napi::Value SoftmaxForward(const Napi::CallbackInfo& info) {
  attn::softmax_forward(F(info, 0), F(info, 1), I(info, 2), I(info, 3));
  return info.Env().Undefined();
}

// Returns [sum, count].
Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  int count = 0;
  double sum = attn::cross_entropy_forward(F(info, 0), I32(info, 1), F(info, 2), I(info, 3), I(info, 4), I(info, 5), &count);
  auto out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, Napi::Number::New(info.Env(), sum));
  out.Set(1u, Napi::Number::New(info.Env(), count));
  return out;
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  attn::cross_entropy_backward(F(info, 0), I32(info, 1), F(info, 2), F(info, 3), I(info, 4), I(info, 5), I(info, 6), R(info, 7), B(info, 8));
  return info.Env().Undefined();
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  auto ids = info[1].As<Napi::Int32Array>();
  attn::embedding_forward(F(info, 0), ids.Data(), F(info, 2), (int)ids.ElementLength(), I(info, 3));
  return info.Env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  auto ids = info[1].As<Napi::Int32Array>();
  attn::embedding_backward(F(info, 0), ids.Data(), F(info, 2), (int)ids.ElementLength(), I(info, 3));
  return info.Env().Undefined();
}

// Attention's 14 dims arguments from i on: B, Tq, Tk, H, Hkv, D, causal, scale, qStride, kvStride,
// keyPadding (Uint8Array [B·Tk] or null), dropout p (0: none), dropout seed, bf16 products.
attn::AttnDims Dims(const Napi::CallbackInfo& info, int i) {
  const uint8_t* pad = info[i + 10].IsNull() ? nullptr : info[i + 10].As<Napi::Uint8Array>().Data();
  return attn::AttnDims{I(info, i),     I(info, i + 1), I(info, i + 2), I(info, i + 3), I(info, i + 4),
                        I(info, i + 5), B(info, i + 6), R(info, i + 7), L(info, i + 8), L(info, i + 9),
                        pad,            info[i + 11].As<Napi::Number>().DoubleValue(), info[i + 12].As<Napi::Number>().Uint32Value(),
                        B(info, i + 13)};
}

// attentionForward(q, k, v, out, lse, ...dims)
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  attn::attention_forward(F(info, 0), F(info, 1), F(info, 2), F(info, 3), F(info, 4), Dims(info, 5));
  return info.Env().Undefined();
}

// attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, ...dims, accumulate)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  attn::attention_backward(F(info, 0), F(info, 1), F(info, 2), F(info, 3), F(info, 4), F(info, 5), F(info, 6), F(info, 7), F(info, 8), Dims(info, 9),
                           B(info, 23));
  return info.Env().Undefined();
}

// adamw(p, g, m, v, lr, beta1, beta2, eps, wd, step)
// linear(x, w, bias|null, y, M, N, K): y = x·Wᵀ + bias, W [N, K] row-major: the common GEMM of a
// Linear layer with 7 arguments instead of 21 (decoding calls it dozens of times per token).
Napi::Value Linear(const Napi::CallbackInfo& info) {
  const int M = I(info, 4), N = I(info, 5), K = I(info, 6);
  attn::Gemm g{false, true, M, N, K, F(info, 0), K, F(info, 1), K, F(info, 3), N, 1.f, false, 1, 0, 0, 0, F(info, 2)};
  attn::gemm(g);
  return info.Env().Undefined();
}

// attentionCached(q, kc, vc, out, start, B, Tq, past, cap, H, Hkv, D, scale)
Napi::Value AttentionCached(const Napi::CallbackInfo& info) {
  attn::KvDims d{I(info, 5), I(info, 6), I(info, 7), I(info, 8), I(info, 9), I(info, 10), I(info, 11), R(info, 12)};
  attn::attention_cached(F(info, 0), F(info, 1), F(info, 2), F(info, 3), I32(info, 4), d);
  return info.Env().Undefined();
}

// attentionCachedRagged(q, out, ks (Float32Array[]), vs (Float32Array[]), meta (Int32Array [S, 5]:
// cap, past, start, offset, Tq), H, Hkv, D, scale)
Napi::Value AttentionCachedRagged(const Napi::CallbackInfo& info) {
  const Napi::Array ks = info[2].As<Napi::Array>(), vs = info[3].As<Napi::Array>();
  const int32_t* meta = I32(info, 4);
  const int S = (int)ks.Length();
  std::vector<attn::RaggedSeq> seqs(S);
  for (int i = 0; i < S; i++) {
    const int32_t* m = meta + 5 * i;
    seqs[i] = {ks.Get(i).As<Napi::Float32Array>().Data(), vs.Get(i).As<Napi::Float32Array>().Data(), m[0], m[1], m[2], m[3], m[4]};
  }
  attn::attention_cached_ragged(F(info, 0), F(info, 1), seqs.data(), S, I(info, 5), I(info, 6), I(info, 7), R(info, 8));
  return info.Env().Undefined();
}

// attentionPaged(q, out, kPool, vPool, tables (Int32Array: every sequence's block table, one after
// another), meta (Int32Array [S, 4]: table start, past, offset, Tq), blockTokens, H, Hkv, D, scale)
Napi::Value AttentionPaged(const Napi::CallbackInfo& info) {
  const int32_t* tables = I32(info, 4);
  const auto meta = info[5].As<Napi::Int32Array>();
  const int S = (int)meta.ElementLength() / 4;
  std::vector<attn::PagedSeq> seqs(S);
  for (int i = 0; i < S; i++) {
    const int32_t* m = meta.Data() + 4 * i;
    seqs[i] = {tables + m[0], m[1], m[2], m[3]};
  }
  attn::attention_paged(F(info, 0), F(info, 1), F(info, 2), F(info, 3), seqs.data(), S, I(info, 6), I(info, 7), I(info, 8), I(info, 9), R(info, 10));
  return info.Env().Undefined();
}

// hugePageBuffer(bytes): a zeroed ArrayBuffer for a large long-lived array (the paged KV
// cache's pool) whose memory the kernel commits in 2 MB pages where it can (madvise
// MADV_HUGEPAGE; this machine's transparent huge pages are "madvise"). A Float32Array of
// the same size is committed 4 KB page by page on first touch, and on a virtual machine
// each such page fault costs more than writing the page: a fresh pool's first writes made
// 64 decoding streams 20-30 % slower than contiguous caches (docs/paged_kv.md). Undefined
// where mmap fails (the caller then allocates a plain array).
Napi::Value HugePageBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t bytes = (size_t)info[0].As<Napi::Number>().Int64Value();
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (bytes == 0 || p == MAP_FAILED) return env.Undefined();
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  // V8 counts it as external memory, as it would a Float32Array's, so that dropped pools are collected.
  Napi::MemoryManagement::AdjustExternalMemory(env, (int64_t)bytes);
  return Napi::ArrayBuffer::New(
      env, p, bytes,
      [](Napi::Env e, void* data, size_t* len) {
        munmap(data, *len);
        Napi::MemoryManagement::AdjustExternalMemory(e, -(int64_t)*len);
        delete len;
      },
      new size_t(bytes));
}

// linearInt8(x, M, K, w (Int8Array [N, K]), scale, bias|null, y, N): y = (x·Wᵀ)∘scale + bias
Napi::Value LinearInt8(const Napi::CallbackInfo& info) {
  const int M = I(info, 1), K = I(info, 2), N = I(info, 7);
  const int8_t* w = info[3].As<Napi::Int8Array>().Data();
  attn::gemv(attn::Gemv<int8_t>{M, N, K, F(info, 0), K, w, K, F(info, 4), F(info, 5), F(info, 6), N, 1.f, false});
  return info.Env().Undefined();
}

// linearPanels(x, M, K, panels, bias|null, y, N): y = x·Wᵀ + bias with W in column panels (panel.h).
Napi::Value LinearPanels(const Napi::CallbackInfo& info) {
  attn::panel_linear(attn::PanelLinear{I(info, 1), I(info, 6), I(info, 2), F(info, 0), F(info, 3), F(info, 4), F(info, 5)});
  return info.Env().Undefined();
}

// topRows(q, n, width, data (Float32Array or Int8Array panels, row_top.h), scale|null, k, rows (Int32Array), scores): count written
Napi::Value TopRows(const Napi::CallbackInfo& info) {
  attn::RowTop t{F(info, 0), I(info, 1), I(info, 2), nullptr, nullptr, info[4].IsNull() ? nullptr : F(info, 4), I(info, 5),
                 info[6].As<Napi::Int32Array>().Data(), F(info, 7)};
  if (info[3].IsTypedArray() && info[3].As<Napi::TypedArray>().TypedArrayType() == napi_int8_array) t.i8 = info[3].As<Napi::Int8Array>().Data();
  else t.f32 = F(info, 3);
  return Napi::Number::New(info.Env(), attn::row_top(t));
}

// topRowsOf(q, m (row-major), width, candidates (Int32Array), count, k, rows, scores): count written
Napi::Value TopRowsOf(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), attn::row_top_of(F(info, 0), F(info, 1), I(info, 2), info[3].As<Napi::Int32Array>().Data(), I(info, 4), I(info, 5),
                                                        info[6].As<Napi::Int32Array>().Data(), F(info, 7)));
}

// linearQuantized(x, M, type (ggml's number), w (Uint8Array of blocks), N, K, bias|null, y, interleave?): y = x·Wᵀ + bias
Napi::Value LinearQuantized(const Napi::CallbackInfo& info) {
  auto w = info[3].As<Napi::Uint8Array>();
  attn::QuantLinear g{I(info, 2), I(info, 1), I(info, 4), I(info, 5), F(info, 0), w.Data(), F(info, 6), F(info, 7)};
  g.interleave = info.Length() > 8 ? I(info, 8) : 0;
  if (g.interleave && (g.interleave != attn::INTERLEAVE || g.N % attn::INTERLEAVE || (g.type != attn::QUANT_Q4_0 && g.type != attn::QUANT_Q8_0))) {
    Napi::Error::New(info.Env(), "linearQuantized: interleaved rows need q4_0 or q8_0 and a multiple of 16 rows").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  attn::linear_quantized(g);
  return info.Env().Undefined();
}

// interleaveQuantRows(type, w, N, K): w (q4_0 or q8_0, N a multiple of 16) rewritten in place into the interleaved layout.
Napi::Value InterleaveQuantRows(const Napi::CallbackInfo& info) {
  const int type = I(info, 0), N = I(info, 2), K = I(info, 3);
  auto w = info[1].As<Napi::Uint8Array>();
  const long bytes = (long)N * (K / 32) * (type == attn::QUANT_Q8_0 ? 34 : 18);
  if ((type != attn::QUANT_Q4_0 && type != attn::QUANT_Q8_0) || N % attn::INTERLEAVE || K % 32 || (long)w.ByteLength() != bytes) {
    Napi::Error::New(info.Env(), "interleaveQuantRows: needs a q4_0 or q8_0 matrix of a multiple of 16 rows").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  attn::interleave_rows16(type, w.Data(), N, K);
  return info.Env().Undefined();
}

// prefersInterleaved(): whether the current ISA's quantized kernels want interleaved rows (AVX-512 VNNI).
Napi::Value PrefersInterleaved(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), attn::prefers_interleaved());
}

// rope(x, out, cos, sin, B, T, H, D, half, perRow, direction, accumulate)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  attn::rope(F(info, 0), F(info, 1), F(info, 2), F(info, 3), I(info, 4), I(info, 5), I(info, 6), I(info, 7), B(info, 8), B(info, 9), I(info, 10), B(info, 11));
  return info.Env().Undefined();
}

// decoderLayerPrepare(ints (Int32Array: C, H, Hkv, D, F, ropeHalf, then for q, k, v, o, gate, up, down:
// kind, N, K, interleave), arrays ([inputNorm, postNorm, then per matrix: w, scale|null, bias|null]), eps):
// the layer's pointers gathered once into an External. The caller keeps `arrays` alive as long as it.
const void* Ptr(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  auto t = v.As<Napi::TypedArray>();
  return static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
}
Napi::Value DecoderLayerPrepare(const Napi::CallbackInfo& info) {
  const int32_t* n = I32(info, 0);
  const Napi::Array a = info[1].As<Napi::Array>();
  auto* s = new attn::DecoderLayerStep{};
  s->input_norm = (const float*)Ptr(a.Get(0u));
  s->post_norm = (const float*)Ptr(a.Get(1u));
  s->C = n[0], s->H = n[1], s->Hkv = n[2], s->D = n[3], s->F = n[4], s->rope_half = n[5] != 0;
  s->eps = R(info, 2);
  attn::StepLinear* ls[7] = {&s->q, &s->k, &s->v, &s->o, &s->gate, &s->up, &s->down};
  for (uint32_t i = 0; i < 7; i++) {
    const int32_t* m = n + 6 + 4 * i;
    *ls[i] = {m[0], Ptr(a.Get(2 + 3 * i)), (const float*)Ptr(a.Get(3 + 3 * i)), (const float*)Ptr(a.Get(4 + 3 * i)), m[1], m[2], m[3]};
  }
  return Napi::External<attn::DecoderLayerStep>::New(info.Env(), s, [](Napi::Env, attn::DecoderLayerStep* p) { delete p; });
}

// decoderLayerStep(plan, x, kc, vc, cap, past, start, cos, sin, scratch): decoder_step.h's one-token step, x updated in place.
Napi::Value DecoderLayerStep(const Napi::CallbackInfo& info) {
  const auto& s = *info[0].As<Napi::External<attn::DecoderLayerStep>>().Data();
  auto scratch = info[9].As<Napi::Float32Array>();
  if ((long)scratch.ElementLength() < attn::decoder_step_scratch_floats(s)) {
    Napi::Error::New(info.Env(), "decoderLayerStep: scratch too small").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  attn::decoder_layer_step(s, F(info, 1), F(info, 2), F(info, 3), I(info, 4), I(info, 5), I(info, 6), F(info, 7), F(info, 8), scratch.Data());
  return info.Env().Undefined();
}

// decoderHeadPrepare(ints (Int32Array: kind, N, K, interleave), arrays ([norm, w, scale|null, bias|null]), eps):
// the output head's pointers (decoder_step.h's DecoderHead) in an External; the caller keeps `arrays` alive.
Napi::Value DecoderHeadPrepare(const Napi::CallbackInfo& info) {
  const int32_t* m = I32(info, 0);
  const Napi::Array a = info[1].As<Napi::Array>();
  auto* h = new attn::DecoderHead{};
  h->norm = (const float*)Ptr(a.Get(0u));
  h->eps = R(info, 2);
  h->out = {m[0], Ptr(a.Get(1u)), (const float*)Ptr(a.Get(2u)), (const float*)Ptr(a.Get(3u)), m[1], m[2], m[3]};
  return Napi::External<attn::DecoderHead>::New(info.Env(), h, [](Napi::Env, attn::DecoderHead* p) { delete p; });
}

// decoderStackPrepare(plans, kcs, vcs): the layers of the backend's decoderLayersStep and their caches (layer
// l's cache kcs[l], vcs[l]) gathered once into an External, for decoderStackStep. The caller keeps the
// plans and the caches alive as long as it.
struct DecoderStack {
  std::vector<const attn::DecoderLayerStep*> layers;
  std::vector<float*> kc, vc;
};
Napi::Value DecoderStackPrepare(const Napi::CallbackInfo& info) {
  const Napi::Array plans = info[0].As<Napi::Array>(), kcs = info[1].As<Napi::Array>(), vcs = info[2].As<Napi::Array>();
  const uint32_t n = plans.Length();
  if (n == 0 || kcs.Length() != n || vcs.Length() != n) {
    Napi::Error::New(info.Env(), "decoderStackPrepare: one key and one value cache per layer, at least one layer").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  auto* st = new DecoderStack{std::vector<const attn::DecoderLayerStep*>(n), std::vector<float*>(n), std::vector<float*>(n)};
  for (uint32_t l = 0; l < n; l++) {
    st->layers[l] = plans.Get(l).As<Napi::External<attn::DecoderLayerStep>>().Data();
    st->kc[l] = (float*)Ptr(kcs.Get(l));
    st->vc[l] = (float*)Ptr(vcs.Get(l));
  }
  return Napi::External<DecoderStack>::New(info.Env(), st, [](Napi::Env, DecoderStack* p) { delete p; });
}

// decoderStackStep(stack, x, cap, past, start, cos, sin, scratch[, head, logits]): decoder_step.h's
// decoder_layers_step for every layer in turn, one job for the pool; false (nothing done) unless the
// layers share the first one's sizes and types. scratch: decoderStepScratch of the first layer. With head
// (decoderHeadPrepare) and logits [N], the same job also writes the token's logits.
Napi::Value DecoderStackStep(const Napi::CallbackInfo& info) {
  const DecoderStack& st = *info[0].As<Napi::External<DecoderStack>>().Data();
  const int n = (int)st.layers.size();
  auto scratch = info[7].As<Napi::Float32Array>();
  if ((long)scratch.ElementLength() < attn::decoder_step_scratch_floats(*st.layers[0])) {
    Napi::Error::New(info.Env(), "decoderStackStep: scratch too small").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  const attn::DecoderHead* head = info.Length() > 9 && info[8].IsExternal() ? info[8].As<Napi::External<attn::DecoderHead>>().Data() : nullptr;
  float* logits = nullptr;
  if (head) {
    auto l = info[9].As<Napi::Float32Array>();
    if ((long)l.ElementLength() < head->out.N || head->out.K != st.layers[0]->C) {
      Napi::Error::New(info.Env(), "decoderStackStep: the head does not fit the layers or the logits").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    logits = l.Data();
  }
  const bool ran = attn::decoder_layers_step(st.layers.data(), n, F(info, 1), st.kc.data(), st.vc.data(), I(info, 2), I(info, 3), I(info, 4), F(info, 5),
                                             F(info, 6), scratch.Data(), head, logits);
  return Napi::Boolean::New(info.Env(), ran);
}

// argmaxRows(x, rows, cols, out): decoder_step.h's argmax_rows (the js backend's argmaxRows, in native).
Napi::Value ArgmaxRows(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  auto out = info[3].As<Napi::Float32Array>();
  const long rows = I(info, 1), cols = I(info, 2);
  if (rows < 0 || cols < 0 || (long)x.ElementLength() < rows * cols || (long)out.ElementLength() < rows) {
    Napi::Error::New(info.Env(), "argmaxRows: the arrays are smaller than rows × cols and rows").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  attn::argmax_rows(x.Data(), rows, cols, out.Data());
  return info.Env().Undefined();
}

// decoderTrace(Float64Array | null): where decoderLayersStep's time goes, added into the array
// (decoder_step.h, set_decode_trace: 2 + 20 per task values); null turns it off.
Napi::Value DecoderTrace(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsTypedArray()) {
    auto t = info[0].As<Napi::Float64Array>();
    // The array is kept alive by the caller for as long as the trace is on.
    attn::set_decode_trace(t.Data(), (int)((t.ElementLength() - 2) / attn::DECODE_TRACE_PER_TASK));
  } else {
    attn::set_decode_trace(nullptr, 0);
  }
  return info.Env().Undefined();
}

// decoderStepScratch(plan): floats of scratch a step of this layer needs.
Napi::Value DecoderStepScratch(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)attn::decoder_step_scratch_floats(*info[0].As<Napi::External<attn::DecoderLayerStep>>().Data()));
}

// streamRead(bytes, timing?): reads every byte once on the pool's threads (memory bandwidth probe); returns their
// XOR fold. timing (Float64Array, 4 per pool thread): per slice its thread, start and end ns, CPU ns.
Napi::Value StreamRead(const Napi::CallbackInfo& info) {
  auto b = info[0].As<Napi::Uint8Array>();
  double* timing = nullptr;
  if (info.Length() > 1 && info[1].IsTypedArray()) {
    auto t = info[1].As<Napi::Float64Array>();
    if ((int)t.ElementLength() < 4 * attn::pool().size()) {
      Napi::Error::New(info.Env(), "streamRead: timing needs 4 values per pool thread").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    timing = t.Data();
  }
  return Napi::Number::New(info.Env(), (double)(attn::stream_read(b.Data(), (long)b.ByteLength(), timing) & 0xffffffffu));
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  auto p = info[0].As<Napi::Float32Array>();
  attn::adamw_step(p.Data(), F(info, 1), F(info, 2), F(info, 3), (long)p.ElementLength(), R(info, 4), R(info, 5), R(info, 6), R(info, 7), R(info, 8), I(info, 9));
  return info.Env().Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  return Napi::Number::New(info.Env(), attn::sum_squares(x.Data(), (long)x.ElementLength()));
}

Napi::Value ScaleInPlace(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  attn::scale_inplace(x.Data(), (long)x.ElementLength(), R(info, 1));
  return info.Env().Undefined();
}

Napi::Value AddRows(const Napi::CallbackInfo& info) {
  attn::add_rows(F(info, 0), F(info, 1), F(info, 2), L(info, 3), L(info, 4));
  return info.Env().Undefined();
}

// dropoutForward(x, out, mask, p, seed)
Napi::Value DropoutForward(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  attn::dropout_forward(x.Data(), F(info, 1), F(info, 2), (long)x.ElementLength(), info[3].As<Napi::Number>().DoubleValue(),
                        info[4].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}

// dropoutBackward(dOut, mask, dx, accumulate)
Napi::Value DropoutBackward(const Napi::CallbackInfo& info) {
  auto dy = info[0].As<Napi::Float32Array>();
  attn::dropout_backward(dy.Data(), F(info, 1), F(info, 2), (long)dy.ElementLength(), B(info, 3));
  return info.Env().Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  auto out = info[2].As<Napi::Float32Array>();
  attn::add(F(info, 0), F(info, 1), out.Data(), (long)out.ElementLength());
  return info.Env().Undefined();
}

Napi::Value ColSumAdd(const Napi::CallbackInfo& info) {
  attn::col_sum_add(F(info, 0), L(info, 1), L(info, 2), F(info, 3));
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  attn::set_threads(I(info, 0));
  return info.Env().Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), attn::pool().size()); }

// isa() -> current name; setIsa(name) -> false if the CPU cannot run it.
Napi::Value GetIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), attn::isa_name(attn::current_isa())); }
Napi::Value DetectedIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), attn::isa_name(attn::detected_isa())); }
Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>();
  attn::Isa isa = name == "avx512" ? attn::Isa::Avx512 : name == "avx2" ? attn::Isa::Avx2 : attn::Isa::Portable;
  return Napi::Boolean::New(info.Env(), attn::set_isa(isa));
}

// bf16Dot() -> whether bf16 products use vdpbf16ps; setBf16Dot(on) -> false if the CPU lacks AVX-512 BF16.
Napi::Value Bf16Dot(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), attn::bf16_dot()); }
Napi::Value CpuHasBf16(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), attn::cpu_has_bf16()); }
Napi::Value SetBf16Dot(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), attn::set_bf16_dot(B(info, 0))); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, Gemm));
  exports.Set("bf16Dot", Napi::Function::New(env, Bf16Dot));
  exports.Set("cpuHasBf16", Napi::Function::New(env, CpuHasBf16));
  exports.Set("setBf16Dot", Napi::Function::New(env, SetBf16Dot));
  exports.Set("layerNormForward", Napi::Function::New(env, LayerNormForward));
  exports.Set("layerNormBackward", Napi::Function::New(env, LayerNormBackward));
  exports.Set("rmsNormForward", Napi::Function::New(env, RmsNormForward));
  exports.Set("rmsNormBackward", Napi::Function::New(env, RmsNormBackward));
  exports.Set("siluForward", Napi::Function::New(env, SiluForward));
  exports.Set("siluBackward", Napi::Function::New(env, SiluBackward));
  exports.Set("swigluForward", Napi::Function::New(env, SwigluForward));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward));
  exports.Set("geluForward", Napi::Function::New(env, GeluForward));
  exports.Set("geluBackward", Napi::Function::New(env, GeluBackward));
  exports.Set("softmaxForward", Napi::Function::New(env, SoftmaxForward));
  exports.Set("crossEntropyForward", Napi::Function::New(env, CrossEntropyForward));
  exports.Set("crossEntropyBackward", Napi::Function::New(env, CrossEntropyBackward));
  exports.Set("embeddingForward", Napi::Function::New(env, EmbeddingForward));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward));
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
  exports.Set("linear", Napi::Function::New(env, Linear));
  exports.Set("attentionCached", Napi::Function::New(env, AttentionCached));
  exports.Set("attentionCachedRagged", Napi::Function::New(env, AttentionCachedRagged));
  exports.Set("attentionPaged", Napi::Function::New(env, AttentionPaged));
  exports.Set("hugePageBuffer", Napi::Function::New(env, HugePageBuffer));
  exports.Set("linearInt8", Napi::Function::New(env, LinearInt8));
  exports.Set("linearPanels", Napi::Function::New(env, LinearPanels));
  exports.Set("topRows", Napi::Function::New(env, TopRows));
  exports.Set("topRowsOf", Napi::Function::New(env, TopRowsOf));
  exports.Set("linearQuantized", Napi::Function::New(env, LinearQuantized));
  exports.Set("interleaveQuantRows", Napi::Function::New(env, InterleaveQuantRows));
  exports.Set("prefersInterleaved", Napi::Function::New(env, PrefersInterleaved));
  exports.Set("rope", Napi::Function::New(env, Rope));
  exports.Set("decoderLayerPrepare", Napi::Function::New(env, DecoderLayerPrepare));
  exports.Set("decoderHeadPrepare", Napi::Function::New(env, DecoderHeadPrepare));
  exports.Set("decoderLayerStep", Napi::Function::New(env, DecoderLayerStep));
  exports.Set("argmaxRows", Napi::Function::New(env, ArgmaxRows));
  exports.Set("decoderStackPrepare", Napi::Function::New(env, DecoderStackPrepare));
  exports.Set("decoderStackStep", Napi::Function::New(env, DecoderStackStep));
  exports.Set("decoderStepScratch", Napi::Function::New(env, DecoderStepScratch));
  exports.Set("decoderTrace", Napi::Function::New(env, DecoderTrace));
  exports.Set("streamRead", Napi::Function::New(env, StreamRead));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
  exports.Set("dropoutForward", Napi::Function::New(env, DropoutForward));
  exports.Set("dropoutBackward", Napi::Function::New(env, DropoutBackward));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("scaleInPlace", Napi::Function::New(env, ScaleInPlace));
  exports.Set("addRows", Napi::Function::New(env, AddRows));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("colSumAdd", Napi::Function::New(env, ColSumAdd));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("isa", Napi::Function::New(env, GetIsa));
  exports.Set("detectedIsa", Napi::Function::New(env, DetectedIsa));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  return exports;
}

}  // namespace

NODE_API_MODULE(attn_native, Init)
