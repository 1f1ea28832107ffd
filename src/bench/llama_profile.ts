import { forwardCached } from '../generate/cached_forward.js';
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
