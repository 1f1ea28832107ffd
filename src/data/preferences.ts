/**
 * Generated preference pairs for the alignment demonstration: the property a
 * user can see is **polite refusal of out-of-scope requests**. The demo
 * assistant does sums, word games and short stories (data/instructions.ts);
 * asked for a poem or tomorrow's weather it should say so, not make
 * something up. Supervised fine-tuning never shows it such requests, so the
 * SFT model answers them anyway; the preferences teach the difference:
 *
 *   out of scope:  chosen = the refusal,        rejected = an attempt to answer
 *   in scope:      chosen = the correct answer, rejected = the refusal
 *
 * (the second kind keeps the model from refusing everything). The rejected
 * attempt is, by default, a made-up answer of the tasks' shapes; the demo
 * replaces it with what the SFT model really replied, which is what DPO
 * should move away from.
 */
import { Rng } from '../util/rng.js';
import { INSTRUCTION_KINDS, instruction, outOfScopeRequest, REFUSAL, WORDS } from './instructions.js';

export interface PreferencePair {
  prompt: string;
  chosen: string;
  rejected: string;
  /** Whether the request is one the assistant should do. */
  inScope: boolean;
}

/** A made-up answer of the tasks' shapes: what an assistant that never refuses might say. */
function attempt(rng: Rng): string {
  const w = WORDS[rng.int(WORDS.length)]!;
  const a = rng.int(10);
  const b = rng.int(10);
  return [w, w.toUpperCase(), [...w].reverse().join(''), `${a} + ${b} = ${a + b}`, `a ${w}`][rng.int(5)]!;
}

/** n pairs, half out of scope, from a fixed seed. */
export function preferencePairs(n: number, seed = 2): PreferencePair[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    if (i % 2 === 0) return { prompt: outOfScopeRequest(rng), chosen: REFUSAL, rejected: attempt(rng), inScope: false };
    const x = instruction(INSTRUCTION_KINDS[(i >> 1) % INSTRUCTION_KINDS.length]!, rng);
    return { prompt: x.prompt, chosen: x.answer, rejected: REFUSAL, inScope: true };
  });
}

/** As JSON Lines rows `{"prompt", "chosen", "rejected"}` (what `attn reward train` and `attn dpo` read). */
export function preferenceRows(pairs: readonly PreferencePair[]): string {
  return pairs.map((p) => JSON.stringify({ prompt: p.prompt, chosen: p.chosen, rejected: p.rejected })).join('\n') + '\n';
}
