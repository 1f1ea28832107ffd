import { backend } from '../backend/index.js';
import type { Storage } from '../backend/storage.js';
import type { CausalLM } from '../models/causal_lm.js';
import { StoredIds } from '../tensor/stored_ids.js';
import { allocStorage, copyStorage, releaseStorage, toBackend } from '../tensor/tensor.js';
import { batchDecodeStored, batchForwardOnDevice } from './batch_step.js';
import { dropPicks, pickGreedy, type QueuedPicks } from './decode_ahead.js';
import { checkGreedy, draftCount, plainGreedy, settleRound, type SpeculativeRow, type SpeculativeStats } from './speculative.js';

/**
 * speculativeRound (speculative.ts) on a device, for greedy rows: one round
 * trip to the device per round.
 *
 * On a host a round's cost is reading the weights; on a GPU driven through
 * Dawn it is as much the round trips — each read of a token back to the host
 * is a wait of milliseconds (docs/webgpu.md), more than a small model's
 * step. Run as on the host, a round would wait once per drafted token and
 * once more for the verdict. Here each row's round is queued whole before
 * anything is read:
 *
 *   - the draft's first pass (the tokens it has not seen, from the host), and
 *     its argmax, picked on the device (decode_ahead.ts pickGreedy);
 *   - each further draft step, fed the last pick where it lies (StoredIds);
 *   - the target's verifying pass, fed the tokens it has not seen and the
 *     drafts as one buffer of ids on the device, scoring the last n + 1
 *     positions, and their argmaxes.
 *
 * Then one wait brings every pick back — the n drafts and the target's
 * n + 1 — and the host keeps the drafts while the target agrees
 * (checkGreedy), exactly as the host round does: the tokens are the
 * target's own greedy tokens. Only greedy rows (plainGreedy): a sampled
 * draft token needs the host's random draw before the next draft step, so
 * a sampled round reads each draft step back (speculativeRoundAsync).
 */
export async function speculativeRoundOnDevice(target: CausalLM, draft: CausalLM, rows: readonly SpeculativeRow[], k: number, stats?: SpeculativeStats): Promise<number[][]> {
  if (!backend().device) throw new Error('speculativeRoundOnDevice runs on a device backend (speculativeRound on a host)');
  checkOnDevice(target, draft, rows);
  const n = rows.map((r) => draftCount(r, k));
  const t0 = performance.now();
  let draftMs = 0;
  const queued = rows.map((row, i) => {
    const drafted = queueDrafts(draft, row, n[i]!);
    draftMs += drafted.ms;
    return { drafts: drafted.picks, ...queueVerdict(target, row, drafted.picks) };
  });
  let picks: Array<[Int32Array[], Int32Array]>;
  try {
    picks = await Promise.all(queued.map((q) => Promise.all([Promise.all(q.drafts.map((p) => p.read)), q.verdict.read])));
  } finally {
    for (const q of queued) {
      dropPicks([...q.drafts, q.verdict]);
      for (const s of q.spent) releaseStorage(s);
    }
  }
  if (stats) {
    // Recording time only for the draft: on a device its passes run while the host waits for the verdict.
    stats.draftSeconds += draftMs / 1000;
    stats.targetSeconds += (performance.now() - t0 - draftMs) / 1000;
  }
  return rows.map((row, i) => {
    const [drafts, verdict] = picks[i]!;
    const out = checkGreedy((j) => verdict[j]!, drafts.map((d) => d[0]!));
    settleRound(row, n[i]!, out, stats);
    return out;
  });
}

/** Whether both models' token tables look ids up where a device keeps them (float or GGUF block-quantized; not int8). */
export function readsOnDevice(target: CausalLM, draft: CausalLM): boolean {
  return target.readsStoredIds?.() === true && draft.readsStoredIds?.() === true;
}

/** What the device round needs: greedy rows, and models that read ids on the device (speculativeRoundAsync routes the others). */
function checkOnDevice(target: CausalLM, draft: CausalLM, rows: readonly SpeculativeRow[]): void {
  if (!rows.every(plainGreedy) || !readsOnDevice(target, draft)) throw new Error('speculativeRoundOnDevice: greedy rows and models that read ids on the device only (speculativeRoundAsync reads the other rounds step by step)');
}

/** The row's n draft steps, each picked on the device and fed to the next where it lies; nothing is awaited. */
function queueDrafts(draft: CausalLM, row: SpeculativeRow, n: number): { picks: QueuedPicks[]; ms: number } {
  const t0 = performance.now();
  const picks: QueuedPicks[] = [];
  if (n > 0) picks.push(pickGreedy(batchForwardOnDevice(draft, [Int32Array.from(row.tokens.slice(row.draft.length))], [row.draft])));
  for (let j = 1; j < n; j++) picks.push(pickGreedy(batchDecodeStored(draft, new StoredIds(picks[j - 1]!.ids, 1), [row.draft])));
  return { picks, ms: performance.now() - t0 };
}

/**
 * The target's pass over the tokens it has not seen and the drafts, and its
 * argmax at each of the last n + 1 positions. `spent`: the id buffers to
 * release once the picks are read.
 */
function queueVerdict(target: CausalLM, row: SpeculativeRow, drafts: readonly QueuedPicks[]): { verdict: QueuedPicks; spent: Storage[] } {
  const unseen = Float32Array.from(row.tokens.slice(row.target.length)); // ids as floats, as argmax picks are kept
  const m = unseen.length;
  const n = drafts.length;
  const known = toBackend(unseen);
  const ids = allocStorage(m + n, false);
  copyStorage(known, 0, ids, 0, m);
  drafts.forEach((p, j) => copyStorage(p.ids, 0, ids, m + j, 1));
  const scores = batchDecodeStored(target, new StoredIds(ids, m + n), [row.target], { lengths: [m + n], scored: [n + 1] });
  return { verdict: pickGreedy(scores), spent: [known, ids] };
}
