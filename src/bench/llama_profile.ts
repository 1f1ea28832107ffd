import { forwardCached, scoresCached } from '../generate/cached_forward.js';
import { setFusedDecode } from '../generate/fused_decode.js';
import type { KVCache } from '../generate/kv_cache.js';
import { argmax } from '../generate/sampling.js';
import type { CausalLM } from '../models/causal_lm.js';
import type { Module } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { withScratch } from '../tensor/buffer_pool.js';

/**
 * Where one decode step's time goes: every module's forward is wrapped with a
 * timer that charges it its own time (its sub-modules' time is theirs), keyed
 * by what it is — a projection by its name (q_proj, down_proj, lm_head…),
 * anything else by its class (RMSNorm, LlamaAttention: RoPE, the cache and
 * the attention itself; GatedFeedForward: SiLU × up; LlamaDecoderLayer: the
 * residual adds). The model as a whole is charged what no module claims
 * (the final norm's caller, argmax…). Milliseconds of CPU time (the
 * process's, all threads) per step, the mean over `steps` steps: on a shared
 * machine wall time would charge an op for the time the process spent
 * descheduled. The wrappers are removed afterwards. The fused decode step
 * (generate/fused_decode.ts) is switched off meanwhile: it runs a whole layer
 * in one call, which no module wrapper would see, so this is the op-by-op
 * path's profile.
 */
/** CPU time of this process so far, in milliseconds. */
function now(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

/**
 * With `tokens` > 1 each step is a prefill instead: the cache emptied, then
 * `tokens` tokens in one pass (where a 256-token prompt's time goes).
 */
export function decodeOpProfile(model: CausalLM, cache: KVCache, vocab: number, steps = 16, tokens = 1): Record<string, number> {
  const totals = new Map<string, number>();
  const stack: number[] = []; // time taken by children of each open call
  const restore: Array<() => void> = [];
  const wrap = (m: Module, key: string) => {
    const own = m as unknown as { forward: (...args: unknown[]) => unknown };
    const original = own.forward;
    own.forward = function (this: unknown, ...args: unknown[]) {
      stack.push(0);
      const t0 = now();
      try {
        return original.apply(this, args);
      } finally {
        const dt = now() - t0;
        const children = stack.pop()!;
        totals.set(key, (totals.get(key) ?? 0) + dt - children);
        if (stack.length) stack[stack.length - 1]! += dt;
      }
    };
    restore.push(() => { own.forward = original; });
  };
  for (const [path, m] of model.namedModules()) {
    if (m === model) continue;
    const cls = m.constructor.name;
    const leaf = path.split('.').at(-1)!;
    wrap(m, /Linear$/.test(cls) ? leaf : cls);
  }
  let total = 0;
  const fused = setFusedDecode(false);
  try {
    noGrad(() => {
      cache.reset();
      let next = argmax(forwardCached(model, Int32Array.from({ length: 16 }, (_, i) => (i * 31) % vocab), [1, 16], cache).data);
      totals.clear();
      const prompt = Int32Array.from({ length: tokens }, (_, i) => (i * 17) % vocab);
      for (let i = 0; i < steps; i++) {
        if (tokens > 1) cache.reset();
        const t0 = now();
        const ids = tokens > 1 ? prompt : Int32Array.of(next);
        next = argmax(withScratch(() => forwardCached(model, ids, [1, ids.length], cache).data)); // recycled as scoresCached does
        total += now() - t0;
      }
    });
  } finally {
    restore.forEach((r) => r());
    setFusedDecode(fused);
  }
  const out: Record<string, number> = {};
  let claimed = 0;
  for (const [k, v] of [...totals].sort((a, b) => b[1] - a[1])) { out[k] = v / steps; claimed += v; }
  out.other = (total - claimed) / steps;
  out.step = total / steps;
  return out;
}

/** The native addon's switch for decoder_layers_step's trace (native/src/decoder_step.h, set_decode_trace). */
export interface DecodeTraceAddon {
  decoderTrace(out: Float64Array | null): void;
}

const TRACE_PHASES = ['qkv', 'attend', 'o', 'mlp', 'down', 'head'] as const;
const TRACE_PER_TASK = 20;

/**
 * Where a fused decode step's wall time goes (the native backend's one call a
 * token): per pool task and phase, the ms per token spent in its chunks
 * (`*_work`), in its RMSNorm and quantizing of x (`*_first`) and waiting for
 * the other tasks at the phase's end (`*_wait`); each task's wall and CPU ms
 * in the call; the call's wall ms, and the step's (scoresCached and argmax in
 * JS): `outside_ms` is what the token costs beyond the native call. Greedy
 * decode of `steps` tokens after a 16-token prompt, means per token.
 */
export function fusedDecodeTrace(addon: DecodeTraceAddon, model: CausalLM, cache: KVCache, vocab: number, threads: number, steps = 32): Record<string, number> {
  const out = new Float64Array(2 + TRACE_PER_TASK * threads);
  let stepMs = 0;
  let stepCpuMs = 0;
  const scores = new Float32Array(vocab); // reused, as the worker and generate's engine decode
  noGrad(() => {
    cache.reset();
    let next = argmax(scoresCached(model, Int32Array.from({ length: 16 }, (_, i) => (i * 7919) % vocab), [1, 16], cache));
    for (let i = 0; i < 4; i++) next = argmax(scoresCached(model, Int32Array.of(next), [1, 1], cache));
    addon.decoderTrace(out);
    try {
      const c0 = now();
      for (let i = 0; i < steps; i++) {
        const s = performance.now();
        next = argmax(scoresCached(model, Int32Array.of(next), [1, 1], cache, scores));
        stepMs += performance.now() - s;
      }
      stepCpuMs = now() - c0;
    } finally {
      addon.decoderTrace(null);
    }
  });
  const calls = out[0]!;
  if (calls === 0) return { calls: 0 };
  const per = (ns: number) => ns / 1e6 / calls;
  const r: Record<string, number> = { calls: calls / steps, step_ms: stepMs / steps, call_ms: per(out[1]!), outside_ms: stepMs / steps - (per(out[1]!) * calls) / steps };
  // CPU time: the process's per step, and what the pool's tasks did not spend of it (JS around the call, GC).
  r.step_cpu_ms = stepCpuMs / steps;
  r.outside_cpu_ms = r.step_cpu_ms;
  for (let t = 0; t < threads; t++) r.outside_cpu_ms -= per(out[2 + TRACE_PER_TASK * t + 19]!);
  for (let t = 0; t < threads; t++) {
    const at = 2 + TRACE_PER_TASK * t;
    TRACE_PHASES.forEach((p, k) => {
      r[`t${t}_${p}_work`] = per(out[at + 3 * k]!);
      r[`t${t}_${p}_first`] = per(out[at + 3 * k + 1]!);
      r[`t${t}_${p}_wait`] = per(out[at + 3 * k + 2]!);
    });
    r[`t${t}_wall`] = per(out[at + 18]!);
    r[`t${t}_cpu`] = per(out[at + 19]!);
  }
  return r;
}
