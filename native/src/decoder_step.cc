// The fused decode step of one Llama-family layer (decoder_step.h): the
// existing kernels (RMSNorm, the GEMV/quantized products, cached attention,
// SwiGLU, RoPE) on one scratch buffer, as one job for the whole thread pool.
//
// Decoding is a stream of weight reads: a token reads every weight once, so
// it runs at the memory bandwidth when each thread streams its own contiguous
// slice of each matrix, as the streaming-read measure does (stream_read.cc),
// and threads wait for each other only where the data flow forces it. So the
// pool runs the layer once, one task per thread, as five phases:
//
//   q, k, v rows           (each thread first norms and quantizes x itself)
//   per KV head: RoPE of k and its query heads, the cache's new slot,
//     attention, that part of the output quantized for o
//   o rows, added into x
//   gate and up rows of one range of F, SwiGLU, that part quantized for down
//                          (each thread first norms and quantizes x itself)
//   down rows, added into x
//
// and, when the caller passes the output head, after the last layer one more
// phase: its rows (each thread first norms and quantizes the final x itself).
//
// Each phase's work is split into T contiguous ranges, balanced by weight
// bytes: thread t streams range t in chunks of 64–256 KB (chunk_bytes) claimed in order from
// its own counter, then takes chunks left in the others' ranges (on a shared
// machine a thread may be descheduled mid-phase, or start late, or never: the
// caller may run every task itself). A phase ends when all its chunks are
// done. Five waits a layer where there were eleven (every element-wise step
// was a phase of its own, and rows were claimed from one shared counter).
//
// Rows are computed by the same kernels as linear_quantized / gemv, and each
// 32-value block of activations is quantized on its own, so results do not
// depend on the thread count or on who took which chunk.
#include "decoder_step.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "gemm.h"
#include "gemv.h"
#include "kernels.h"
#include "quant.h"
#include "threadpool.h"
#include "vec.h"

namespace attn {

namespace {

long row_bytes(const StepLinear& l) {
  switch (l.kind) {
    case STEP_F32: return 4L * l.K;
    case STEP_INT8: return l.K;
    case QUANT_Q8_0: return l.K / 32 * 34L;
    case QUANT_Q4_0: return l.K / 32 * 18L;
    case QUANT_Q4_K: return l.K / 256 * 144L;
    default: return l.K / 256 * 210L;  // q6_k
  }
}

bool quantized(const StepLinear& l) { return l.kind == QUANT_Q8_0 || l.kind == QUANT_Q4_0; }

// Rows [n0, n1) of y [N] = x [K]·Wᵀ + bias on this thread; a: x quantized for W's type (q8_0 / q4_0).
void linear_rows(const StepLinear& l, const float* x, const QuantActs& a, float* y, int n0, int n1) {
  if (n0 >= n1) return;
  if (l.kind == STEP_F32) {
    const float* w = (const float*)l.w + (long)n0 * l.K;
    gemv_serial(Gemv<float>{1, n1 - n0, l.K, x, l.K, w, l.K, nullptr, l.bias ? l.bias + n0 : nullptr, y + n0, l.N, 1.f, false});
  } else if (l.kind == STEP_INT8) {
    const int8_t* w = (const int8_t*)l.w + (long)n0 * l.K;
    gemv_serial(Gemv<int8_t>{1, n1 - n0, l.K, x, l.K, w, l.K, l.scale + n0, l.bias ? l.bias + n0 : nullptr, y + n0, l.N, 1.f, false});
  } else {
    QuantLinear g{l.kind, 1, l.N, l.K, x, (const uint8_t*)l.w, l.bias, y};
    g.interleave = l.interleave;
    linear_quantized_rows(g, a, n0, n1);
  }
}

// The activations of the products that read one input vector, quantized once per
// weight type that needs it (q4_0 and q8_0 differ in their offset correction).
struct SharedActs {
  QuantActsBuf buf[2];  // [0]: q4_0, [1]: q8_0
  void prepare(int K, std::initializer_list<const StepLinear*> ls) {
    for (const StepLinear* l : ls)
      if (quantized(*l)) prepare_activations(l->kind, 1, K, buf[l->kind == QUANT_Q8_0]);
  }
  // Blocks b0 … b1 − 1 of x, for each type that ls need (prepare first).
  void quantize(const float* x, long b0, long b1, std::initializer_list<const StepLinear*> ls) {
    bool done[2] = {false, false};
    for (const StepLinear* l : ls) {
      if (!quantized(*l)) continue;
      const int i = l->kind == QUANT_Q8_0;
      if (!done[i]) quantize_activation_blocks(l->kind, x, b0, b1, buf[i]);
      done[i] = true;
    }
  }
  const QuantActs& of(const StepLinear& l) const { return buf[l.kind == QUANT_Q8_0].acts; }
};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// The work of one phase: an index space [0, U) (the rows of the phase's products one after
// the other, or KV heads, or columns of F), cut into T contiguous ranges, one per thread,
// each range into chunks of `chunk` indices. Thread t claims the chunks of its own range in
// order from its own counter, so it streams its slice of the weights front to back as the
// streaming-read measure does; with its range done, it claims what is left of the others'
// (a thread that was descheduled, or never started, only leaves work to be taken). The
// phase is over when every chunk is done: each chunk's done is a release, the wait an acquire.
constexpr int MAX_THREADS = 64;
struct alignas(64) Counter { std::atomic<int> v; };
struct Phase {
  int bound[MAX_THREADS + 1];
  int chunk = 1, T = 1, total = 0;
  Counter next[MAX_THREADS];
  Counter done;
  Phase() {
    for (auto& c : next) c.v.store(0, std::memory_order_relaxed);
    done.v.store(0, std::memory_order_relaxed);
  }
  void reset(int threads) {
    T = threads;
    for (int t = 0; t < T; t++) next[t].v.store(0, std::memory_order_relaxed);
    done.v.store(0, std::memory_order_relaxed);
  }
  int chunks_of(int t) const { return (bound[t + 1] - bound[t] + chunk - 1) / chunk; }
  // The same split as o (a phase of another layer of the same shape), counters at zero.
  void same_as(const Phase& o) {
    std::copy(o.bound, o.bound + o.T + 1, bound);
    chunk = o.chunk;
    total = o.total;
    reset(o.T);
  }
  void finish_setup() {
    total = 0;
    for (int t = 0; t < T; t++) total += chunks_of(t);
  }
  // fn(i0, i1) for chunks of indices, this thread's own first; then wait for the phase.
  // `first` runs once before this thread's first chunk (when it gets one). tr: where the
  // trace (set_decode_trace) adds this phase's chunk, first and wait ns; null when off.
  template <class First, class F>
  void run(int self, const First& first, const F& fn, double* tr = nullptr) {
    using clock = std::chrono::steady_clock;
    const auto t0 = tr ? clock::now() : clock::time_point{};
    double first_ns = 0;
    bool started = false;
    for (int k = 0; k < T; k++) {
      const int t = (self + k) % T, n = chunks_of(t);
      for (int c; (c = next[t].v.fetch_add(1, std::memory_order_relaxed)) < n;) {
        if (!started) {
          const auto f0 = tr ? clock::now() : clock::time_point{};
          first();
          if (tr) first_ns = std::chrono::duration<double, std::nano>(clock::now() - f0).count();
          started = true;
        }
        const int i0 = bound[t] + c * chunk;
        fn(i0, std::min(bound[t + 1], i0 + chunk));
        done.v.fetch_add(1, std::memory_order_release);
      }
    }
    const auto t1 = tr ? clock::now() : clock::time_point{};
    for (long spin = 0; done.v.load(std::memory_order_acquire) < total; spin++) {
      if (spin < 20000) cpu_relax();
      else std::this_thread::yield();  // the thread holding the last chunk was descheduled
    }
    if (tr) {
      tr[0] += std::chrono::duration<double, std::nano>(t1 - t0).count() - first_ns;
      tr[1] += first_ns;
      tr[2] += std::chrono::duration<double, std::nano>(clock::now() - t1).count();
    }
  }
};

// Weight bytes of one chunk of rows (rounded to whole 16-row groups, the interleaved
// layout's unit): a phase's bytes / (4 T), within 64–256 KB. Measured on SmolLM2-135M q4_0
// at 2 threads with chunks claimed from one shared counter: 16 KB chunks ran 4.9 ms a token,
// 64 KB 3.7–3.8, 128 KB 3.5–3.8. With a counter per thread (loaded, TinyLlama q4_0,
// 2 threads, tokens per CPU-second): 256 KB beat 64 KB in 7 of 8 interleaved pairs, +12–15 %
// median (an MLP chunk is then 128 rows of gate, then of up: the stream switches matrices
// every 147 KB, not every 36 KB); SmolLM2, whose q/k/v and o phases are 187–311 KB in all,
// was no better at 256 KB, and keeps chunks of 64 KB there: ≥ 4 a thread, left to take.
long chunk_bytes(long phase_bytes, int T) { return std::clamp(phase_bytes / (4L * T), 64L << 10, 256L << 10); }

// The rows of products ls one after the other, split between T threads by weight bytes
// (thread 0 streams the first part of that matrix, …), boundaries at whole units of rows.
void split_rows(Phase& ph, std::initializer_list<const StepLinear*> ls, int T, int unit) {
  long total = 0, rows = 0;
  for (const StepLinear* l : ls) { total += (long)l->N * row_bytes(*l); rows += l->N; }
  ph.reset(T);
  ph.bound[0] = 0;
  for (int t = 1; t < T; t++) {
    const long at = total * t / T;  // the row at byte `at` of the whole
    long base = 0, row0 = 0, row = rows;
    for (const StepLinear* l : ls) {
      const long bytes = (long)l->N * row_bytes(*l);
      if (at < base + bytes) { row = row0 + (at - base) / row_bytes(*l); break; }
      base += bytes;
      row0 += l->N;
    }
    ph.bound[t] = (int)std::min(rows, (row + unit / 2) / unit * unit);
  }
  ph.bound[T] = (int)rows;
  const long avg = std::max(1L, total / std::max(1L, rows));
  ph.chunk = (int)std::max<long>(unit, (chunk_bytes(total, T) / avg + unit / 2) / unit * unit);
  ph.finish_setup();
}

// [0, n) split evenly between T threads in whole units; one unit per chunk.
void split_even(Phase& ph, int n, int T, int unit, int chunk) {
  ph.reset(T);
  for (int t = 0; t <= T; t++) {
    const long at = ((long)n * t + T / 2) / T;
    ph.bound[t] = t == T ? n : (int)std::min<long>(n, (at + unit / 2) / unit * unit);
  }
  ph.chunk = chunk;
  ph.finish_setup();
}

// Rows [i0, i1) of the products ls laid one after the other: fn(product index, rows n0, n1).
template <class F>
void each_product(std::initializer_list<const StepLinear*> ls, int i0, int i1, const F& fn) {
  int base = 0, i = 0;
  for (const StepLinear* l : ls) {
    const int n0 = std::max(i0 - base, 0), n1 = std::min(i1 - base, l->N);
    if (n0 < n1) fn(i, n0, n1);
    base += l->N;
    i++;
  }
}

// The cached keys and values (columns c0 … c1 − 1 of rows first … past − 1) that a thread's KV
// heads will read in the attend phase, prefetched when its q/k/v phase starts. Every other layer's
// weights stream through the caches between one token's attention and the next, so without it
// attention reads the cache rows from DRAM at the latency of a few lines in flight, with no weight
// read beside it. Measured loaded, 1 thread, 8 interleaved pairs (bench/q4_decode_ab.mjs with trace):
// SmolLM2-135M Q4_0's attend phase 0.36 → 0.26 ms a token (median), CPU per token 2.92 → 2.79 ms;
// TinyLlama's attend 0.55 → 0.46 ms (4 pairs). It only moves data: results are unchanged.
// ATTN_KV_PF=0 turns it off (for A/B runs).
bool kv_prefetch() {
  static const bool on = [] { const char* e = std::getenv("ATTN_KV_PF"); return !e || std::atoi(e) != 0; }();
  return on;
}
void prefetch_cache(const float* kc, const float* vc, int first, int past, long ld, long c0, long c1) {
#if defined(__x86_64__) || defined(__i386__)
  for (int r = first; r < past; r++)
    for (long c = c0; c < c1; c += 16) {
      _mm_prefetch((const char*)(kc + r * ld + c), _MM_HINT_T0);
      _mm_prefetch((const char*)(vc + r * ld + c), _MM_HINT_T0);
    }
#else
  (void)kc; (void)vc; (void)first; (void)past; (void)ld; (void)c0; (void)c1;
#endif
}

std::atomic<double*> g_trace{nullptr};
std::atomic<int> g_trace_tasks{0};

double thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

}  // namespace

void set_decode_trace(double* out, int tasks) {
  g_trace_tasks.store(out ? tasks : 0);
  g_trace.store(out);
}

long decoder_step_scratch_floats(const DecoderLayerStep& s) {
  const long q = (long)s.H * s.D, kv = (long)s.Hkv * s.D;
  // h, q, k, v, attention out, gate, up, plus one float of RMSNorm's rstd
  return s.C + q + 2 * kv + q + 2L * s.F + 1;
}

namespace {

// The phases of one layer, split for T threads, their counters at zero.
struct LayerPhases {
  Phase qkv, attend, attq, o, mlp, down;
  void setup(const DecoderLayerStep& s, int T) {
    split_rows(qkv, {&s.q, &s.k, &s.v}, T, 16);
    split_even(attend, s.Hkv, T, 1, 1);
    split_even(attq, 1, 1, 1, 1);
    split_rows(o, {&s.o}, T, 16);
    split_rows(down, {&s.down}, T, 16);
    split_even(mlp, s.F, T, 32, 32);
    const long f_bytes = row_bytes(s.gate) + row_bytes(s.up);
    mlp.chunk = (int)std::max<long>(32, (chunk_bytes(f_bytes * s.F, T) / std::max(1L, f_bytes) + 16) / 32 * 32);
    mlp.finish_setup();
  }
  // Layer o's split (the layers of one call share their shapes: decoder_layers_step checks), counters at zero.
  void same_as(const LayerPhases& o) {
    qkv.same_as(o.qkv), attend.same_as(o.attend), attq.same_as(o.attq), this->o.same_as(o.o), mlp.same_as(o.mlp), down.same_as(o.down);
  }
};

bool same_shape(const DecoderLayerStep& a, const DecoderLayerStep& b) {
  const StepLinear* la[7] = {&a.q, &a.k, &a.v, &a.o, &a.gate, &a.up, &a.down};
  const StepLinear* lb[7] = {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down};
  for (int i = 0; i < 7; i++)
    if (la[i]->kind != lb[i]->kind || la[i]->N != lb[i]->N || la[i]->K != lb[i]->K) return false;
  return a.C == b.C && a.H == b.H && a.Hkv == b.Hkv && a.D == b.D && a.F == b.F;
}

}  // namespace

bool decoder_layers_step(const DecoderLayerStep* const* layers, int n, float* x, float* const* kcs, float* const* vcs, int cap, int past, int start,
                         const float* cos, const float* sin, float* scratch, const DecoderHead* head, float* logits) {
  if (n <= 0) return true;
  const DecoderLayerStep& s0 = *layers[0];
  for (int l = 1; l < n; l++)
    if (!same_shape(s0, *layers[l])) return false;
  const long qw = (long)s0.H * s0.D, kvw = (long)s0.Hkv * s0.D;
  float* h = scratch;
  float* q = h + s0.C;
  float* k = q + qw;
  float* v = k + kvw;
  float* att = v + kvw;
  float* gate = att + qw;
  float* up = gate + s0.F;

  // The outputs that every thread quantizes in part are the caller's buffers, shared by reference
  // (and by the layers in turn: a layer writes them only after the previous one's last phase).
  // The element-wise steps call the vec kernels directly: kernels.h's would hand large ones to the pool, which is busy running this.
  thread_local SharedActs att_acts, down_acts;
  SharedActs& a_att = att_acts;
  SharedActs& a_down = down_acts;
  a_att.prepare((int)qw, {&s0.o});
  a_down.prepare(s0.F, {&s0.down});
  const KvDims kd{1, 1, past, cap, s0.H, s0.Hkv, s0.D, 1.f / __builtin_sqrtf((float)s0.D)};
  const int T = std::min(pool().size(), MAX_THREADS);
  const int group = s0.H / s0.Hkv;
  // Each chunk of attention quantizes the output of its own heads when heads are whole blocks; else one more phase does.
  const bool att_split = s0.D % 32 == 0;
  thread_local std::vector<LayerPhases> phase_store;
  if ((int)phase_store.size() < n) phase_store = std::vector<LayerPhases>(n);
  LayerPhases* phases = phase_store.data();
  phases[0].setup(s0, T);
  for (int l = 1; l < n; l++) phases[l].same_as(phases[0]);
  thread_local Phase head_store;
  Phase& head_phase = head_store;  // the caller's, shared by reference (a worker's own thread_local is another)
  if (head) split_rows(head_phase, {&head->out}, T, 16);

  double* const trace = g_trace.load(std::memory_order_relaxed);
  const int trace_tasks = g_trace_tasks.load(std::memory_order_relaxed);
  const auto call0 = std::chrono::steady_clock::now();
  // This task's trace slot for phase kind k, or null.
  auto tr = [&](int t, int k) -> double* { return trace && t < trace_tasks ? trace + 2 + DECODE_TRACE_PER_TASK * t + 3 * k : nullptr; };

  auto layer = [&](int t, const DecoderLayerStep& s, LayerPhases& ph, float* kc, float* vc) {
    // This thread's own normed input and its quantized copies (each thread that takes a chunk of
    // the phase computes the same values, when it claims its first: x is not written meanwhile).
    thread_local std::vector<float> hl, rstd;
    thread_local SharedActs in_acts, mlp_acts;
    hl.resize(s.C);
    rstd.resize(1);
    // Attention block: x += o_proj(attend(rope(q), cache ∪ rope(k), cache ∪ v)).
    float* qkv_out[3] = {q, k, v};
    const StepLinear* qkv_l[3] = {&s.q, &s.k, &s.v};
    ph.qkv.run(t, [&] {
      // The cached keys and values this thread's KV heads read in the attend phase, on their way
      // while the weights stream: attention then finds them in cache, not in DRAM (see prefetch_cache).
      if (kv_prefetch()) prefetch_cache(kc, vc, std::max(0, start), past, kvw, (long)ph.attend.bound[std::min(t, ph.attend.T)] * s.D,
                                        (long)ph.attend.bound[std::min(t + 1, ph.attend.T)] * s.D);
      vec().rmsnorm_forward(x, s.input_norm, hl.data(), rstd.data(), 0, 1, s.C, s.eps);
      in_acts.prepare(s.C, {&s.q, &s.k, &s.v});
      in_acts.quantize(hl.data(), 0, s.C / 32, {&s.q, &s.k, &s.v});
    }, [&](int i0, int i1) {
      each_product({&s.q, &s.k, &s.v}, i0, i1, [&](int i, int n0, int n1) {
        linear_rows(*qkv_l[i], hl.data(), in_acts.of(*qkv_l[i]), qkv_out[i], n0, n1);
      });
    }, tr(t, 0));
    // KV head g and its query heads: RoPE, the cache's new slot, attention, the output quantized.
    ph.attend.run(t, [] {}, [&](int g0, int g1) {
      const int h0 = g0 * group, h1 = g1 * group;
      rope(q + (long)h0 * s.D, q + (long)h0 * s.D, cos, sin, 1, 1, h1 - h0, s.D, s.rope_half, false, 1, false);
      rope(k + (long)g0 * s.D, k + (long)g0 * s.D, cos, sin, 1, 1, g1 - g0, s.D, s.rope_half, false, 1, false);
      std::memcpy(kc + (long)past * kvw + (long)g0 * s.D, k + (long)g0 * s.D, (size_t)(g1 - g0) * s.D * sizeof(float));
      std::memcpy(vc + (long)past * kvw + (long)g0 * s.D, v + (long)g0 * s.D, (size_t)(g1 - g0) * s.D * sizeof(float));
      for (int a = h0; a < h1; a += 64) attention_decode_heads(q, kc, vc, att, start, kd, a, std::min(h1, a + 64));
      if (att_split) a_att.quantize(att, (long)h0 * s.D / 32, (long)h1 * s.D / 32, {&s.o});
    }, tr(t, 1));
    if (!att_split) ph.attq.run(t, [] {}, [&](int, int) { a_att.quantize(att, 0, qw / 32, {&s.o}); }, tr(t, 1));
    // o_proj's rows, added into x (h is free: o_proj's output).
    ph.o.run(t, [] {}, [&](int n0, int n1) {
      linear_rows(s.o, att, a_att.of(s.o), h, n0, n1);
      vec().add(x + n0, h + n0, x + n0, 0, n1 - n0);
    }, tr(t, 2));
    // MLP block: x += down(silu(gate(n)) · up(n)), n = RMSNorm(x). A chunk is the same rows of
    // gate and up, so that its SwiGLU and its blocks of down's input need no other chunk.
    ph.mlp.run(t, [&] {
      vec().rmsnorm_forward(x, s.post_norm, hl.data(), rstd.data(), 0, 1, s.C, s.eps);
      mlp_acts.prepare(s.C, {&s.gate, &s.up});
      mlp_acts.quantize(hl.data(), 0, s.C / 32, {&s.gate, &s.up});
    }, [&](int f0, int f1) {
      linear_rows(s.gate, hl.data(), mlp_acts.of(s.gate), gate, f0, f1);
      linear_rows(s.up, hl.data(), mlp_acts.of(s.up), up, f0, f1);
      vec().swiglu_forward(gate + f0, up + f0, gate + f0, 0, f1 - f0);
      a_down.quantize(gate, f0 / 32, f1 / 32, {&s.down});  // F is a multiple of 32 where down is q8_0 / q4_0
    }, tr(t, 3));
    ph.down.run(t, [] {}, [&](int n0, int n1) {
      linear_rows(s.down, gate, a_down.of(s.down), h, n0, n1);
      vec().add(x + n0, h + n0, x + n0, 0, n1 - n0);
    }, tr(t, 4));
  };
  auto stack_body = [&](int t) {
    for (int l = 0; l < n; l++) layer(t, *layers[l], phases[l], kcs[l], vcs[l]);
    if (!head) return;
    // The head: each thread norms and quantizes the final x itself (as for q/k/v), then its rows.
    thread_local std::vector<float> hn, rstd;
    thread_local SharedActs head_acts;
    hn.resize(s0.C);
    rstd.resize(1);
    head_phase.run(t, [&] {
      vec().rmsnorm_forward(x, head->norm, hn.data(), rstd.data(), 0, 1, s0.C, head->eps);
      head_acts.prepare(s0.C, {&head->out});
      head_acts.quantize(hn.data(), 0, s0.C / 32, {&head->out});
    }, [&](int n0, int n1) { linear_rows(head->out, hn.data(), head_acts.of(head->out), logits, n0, n1); }, tr(t, 5));
  };
  auto stack = [&](int t) {
    double* slot = tr(t, 0);
    if (!slot) return stack_body(t);
    const auto w0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_ns();
    stack_body(t);
    slot[18] += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - w0).count();
    slot[19] += thread_cpu_ns() - c0;
  };
  if (T == 1) stack(0);
  // One task per thread, task t starting at range t of each phase; a task that starts after
  // the others finished finds nothing left and returns.
  else pool().run(T, [&](int task, int) { stack(task); });
  if (trace) {
    trace[0] += 1;
    trace[1] += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - call0).count();
  }
  return true;
}

namespace {

long argmax_portable(const float* x, long n) {
  long best = 0;
  float top = x[0];
  for (long i = 1; i < n; i++)
    if (x[i] > top) top = x[i], best = i;
  return best;
}

#if defined(__x86_64__) || defined(__i386__)
// 64 lanes (four vectors, so that no compare waits for the last), each holding the first index
// of its largest value greater than x[0] (or x[0] and index 0); then the lanes' largest value at
// its least index, then the tail in order. A lane takes a value only when it is greater (ordered
// compare: a NaN never), so a lane's index is the first of its maximum, and the least index among
// the lanes holding the overall maximum is the first in x: argmax_portable's answer.
__attribute__((target("avx512f"))) long argmax_avx512(const float* x, long n) {
  if (n < 64 || !(x[0] == x[0]) || n > (1L << 30)) return argmax_portable(x, n);
  __m512 top[4];
  __m512i idx[4], at[4];
  for (int j = 0; j < 4; j++) {
    top[j] = _mm512_set1_ps(x[0]);
    idx[j] = _mm512_setzero_si512();
    at[j] = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(16 * j));
  }
  const __m512i step = _mm512_set1_epi32(64);
  long i = 0;
  for (; i + 64 <= n; i += 64)
    for (int j = 0; j < 4; j++) {
      const __m512 v = _mm512_loadu_ps(x + i + 16 * j);
      const __mmask16 m = _mm512_cmp_ps_mask(v, top[j], _CMP_GT_OQ);
      top[j] = _mm512_mask_mov_ps(top[j], m, v);
      idx[j] = _mm512_mask_mov_epi32(idx[j], m, at[j]);
      at[j] = _mm512_add_epi32(at[j], step);
    }
  alignas(64) float t[64];
  alignas(64) int32_t ix[64];
  for (int j = 0; j < 4; j++) {
    _mm512_store_ps(t + 16 * j, top[j]);
    _mm512_store_si512((void*)(ix + 16 * j), idx[j]);
  }
  float best_v = x[0];
  long best = 0;
  for (int l = 0; l < 64; l++)
    if (t[l] > best_v || (t[l] == best_v && ix[l] < best)) best_v = t[l], best = ix[l];
  for (; i < n; i++)
    if (x[i] > best_v) best_v = x[i], best = i;
  return best;
}
#endif

}  // namespace

void argmax_rows(const float* x, long rows, long cols, float* out) {
#if defined(__x86_64__) || defined(__i386__)
  static const bool wide = __builtin_cpu_supports("avx512f");
  auto one = wide ? argmax_avx512 : argmax_portable;
#else
  auto one = argmax_portable;
#endif
  for (long r = 0; r < rows; r++) out[r] = cols > 0 ? (float)one(x + r * cols, cols) : 0.f;
}

void decoder_layer_step(const DecoderLayerStep& s, float* x, float* kc, float* vc, int cap, int past, int start, const float* cos,
                        const float* sin, float* scratch) {
  const DecoderLayerStep* layers[1] = {&s};
  decoder_layers_step(layers, 1, x, &kc, &vc, cap, past, start, cos, sin, scratch);
}

}  // namespace attn
