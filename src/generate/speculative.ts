import { backend } from '../backend/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
import { batchForward, batchForwardOnDevice } from './batch_step.js';
import { checkedPrompts, type Decoder, type GenerateOptions } from './engine.js';
import { DraftLength } from './draft_length.js';
import { KVCache } from './kv_cache.js';
import { readsOnDevice, speculativeRoundOnDevice } from './speculative_device.js';
import { argmax, penalizeRepeats, sampleIndex, tokenDistribution, type SamplingOptions } from './sampling.js';

/**
 * Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a small
 * draft model guesses the next k tokens one at a time, cheaply; the large
 * target model then scores all of them in ONE forward pass over the k + 1
 * new positions, which costs little more than scoring one, because a decode
 * step's cost is reading the weights, not the few rows they multiply.
 *
 * Drafted token i is kept with probability min(1, p(x)/q(x)) — p the target's
 * distribution at that position, q the draft's. At the first refusal the
 * token is drawn instead from norm(max(0, p − q)), and the rest of the draft
 * is thrown away; if all k are kept, the target's scores after the last one
 * give a bonus token for free. Whatever the draft proposes, each emitted
 * token is distributed exactly as the target alone would sample it: the
 * draft changes only how many tokens one target pass yields. Greedy decoding
 * is the case where p and q put all their mass on one token: a drafted token
 * is kept when it is the target's argmax, so the output is the target's own.
 *
 * Both models keep a KV cache of everything but the row's last token; after
 * a round the caches are cut back to the kept tokens (truncate), and a draft
 * cache that fell behind (all k kept: it never saw the last draft) catches
 * up at the start of the next round.
 */

/** One sequence as a speculative round sees it. */
export interface SpeculativeRow {
  /** The context: prompt, then every token emitted so far. The caches hold a prefix of it (all but the last token at most). */
  tokens: number[];
  target: KVCache;
  draft: KVCache;
  sampling: SamplingOptions;
  rng: Rng;
  /** Most tokens this round may emit (≥ 1): what max_tokens leaves. */
  budget: number;
}

/** Running totals over rounds: how many tokens the draft proposed, how many the target kept, how many it emitted per pass. */
export class SpeculativeStats {
  rounds = 0;
  drafted = 0;
  accepted = 0;
  emitted = 0;
  /** Wall time in the draft's passes and in the target's (verifying) passes: where a round's time goes. */
  draftSeconds = 0;
  targetSeconds = 0;
  /** Kept drafts by position in the round: acceptedAt[j] rounds kept draft j (of draftedAt[j] that proposed one). */
  readonly acceptedAt: number[] = [];
  readonly draftedAt: number[] = [];

  /** Share of drafted tokens the target kept. */
  get acceptanceRate(): number {
    return this.drafted === 0 ? 0 : this.accepted / this.drafted;
  }

  /** Tokens per target forward pass: the speed-up's ceiling (1 without a draft). */
  get tokensPerTargetPass(): number {
    return this.rounds === 0 ? 0 : this.emitted / this.rounds;
  }

  toJSON(): Record<string, number> {
    return {
      rounds: this.rounds, drafted: this.drafted, accepted: this.accepted, emitted: this.emitted,
      acceptance_rate: this.acceptanceRate, tokens_per_target_pass: this.tokensPerTargetPass,
      draft_seconds: this.draftSeconds, target_seconds: this.targetSeconds,
    };
  }
}

/** A row's sampling distribution over the vocabulary after `context` (the repetition penalty looks at it). */
function distribution(logits: Float32Array, row: SpeculativeRow, context: () => number[]): Float64Array {
  const penalty = row.sampling.repetitionPenalty;
  if (penalty === undefined || penalty === 1) return tokenDistribution(logits, row.sampling);
  const edited = Float32Array.from(logits);
  penalizeRepeats(edited, context(), penalty);
  return tokenDistribution(edited, row.sampling);
}

/**
 * Greedy decoding with nothing that edits the scores: p and q are one-hot, so
 * the acceptance rule is "keep the draft while it is the target's argmax", and
 * the row needs neither distribution (two arrays of the vocabulary's size per
 * drafted token: 400 KB each for GPT-2's, per round, for the collector).
 */
export function plainGreedy(row: SpeculativeRow): boolean {
  const { greedy, temperature, repetitionPenalty } = row.sampling;
  return (greedy === true || temperature === 0) && (repetitionPenalty === undefined || repetitionPenalty === 1);
}

/** Drafted tokens a row can check this round: k, less what its budget and its two caches leave room for. */
export function draftCount(row: SpeculativeRow, k: number): number {
  const L = row.tokens.length;
  const targetRoom = row.target.free - (L - row.target.length); // after feeding the tokens it has not seen
  const draftRoom = row.draft.free - (L - row.draft.length) + 1; // the last draft is never fed to the draft
  return Math.max(0, Math.min(k, row.budget - 1, targetRoom, draftRoom));
}

/**
 * One round for every row (each with its own caches, sampling options and
 * random generator): the draft proposes up to k tokens per row (k batched
 * draft passes), the target checks them all in one batched pass, and each
 * row keeps its accepted prefix plus one token of the target's. Returns
 * each row's new tokens (1 … k + 1 of them; already appended to row.tokens).
 */
export function speculativeRound(target: CausalLM, draft: CausalLM, rows: readonly SpeculativeRow[], k: number, stats?: SpeculativeStats): number[][] {
  return valuesNow(roundReads(target, draft, rows, k, stats));
}

/**
 * speculativeRound on any backend. On a device a round of greedy rows is
 * queued whole and read back once (speculative_device.ts); a round with
 * sampled rows — or with a model whose token table cannot look ids up on
 * the device (an int8 one) — reads each draft step's scores back before the
 * next (the host picks each draft token) and the verifying pass's once.
 */
export function speculativeRoundAsync(target: CausalLM, draft: CausalLM, rows: readonly SpeculativeRow[], k: number, stats?: SpeculativeStats): Promise<number[][]> {
  if (backend().device && rows.every(plainGreedy) && readsOnDevice(target, draft)) return speculativeRoundOnDevice(target, draft, rows, k, stats);
  return valuesAwaited(roundReads(target, draft, rows, k, stats));
}

/**
 * A batched pass's scores as a tensor to be read: on a host the array
 * batchForward returns (its scratch recycled, the scores kept), on a device
 * batchForwardOnDevice's, released by valuesAwaited once read.
 */
function passScores(model: CausalLM, chunks: readonly Int32Array[], caches: readonly KVCache[], scored?: ArrayLike<number>): Tensor {
  if (backend().device) return batchForwardOnDevice(model, chunks, caches, undefined, scored);
  const rows = scored ? Array.from(scored).reduce((a, b) => a + b, 0) : chunks.length;
  return new Tensor(batchForward(model, chunks, caches, undefined, scored), [rows, model.config.vocab_size]);
}

/** The round as a computation that yields each pass's scores to be read (tensor/value_reads.ts). */
function* roundReads(target: CausalLM, draft: CausalLM, rows: readonly SpeculativeRow[], k: number, stats?: SpeculativeStats): ValueReads<number[][]> {
  const n = rows.map((r) => draftCount(r, k));
  const drafts: number[][] = rows.map(() => []);
  const q: Float64Array[][] = rows.map(() => []);
  const V = target.config.vocab_size;
  const t0 = performance.now();
  // The draft, one token at a time: its first pass also feeds what it has not seen yet.
  for (let j = 0; j < Math.max(0, ...n); j++) {
    const active = rows.flatMap((_, i) => (n[i]! > j ? [i] : []));
    const chunks = active.map((i) => (j === 0 ? Int32Array.from(rows[i]!.tokens.slice(rows[i]!.draft.length)) : Int32Array.of(drafts[i]![j - 1]!)));
    const pass = passScores(draft, chunks, active.map((i) => rows[i]!.draft));
    const [logits] = yield [pass];
    active.forEach((i, a) => {
      const row = rows[i]!;
      const scores = logits!.subarray(a * V, (a + 1) * V);
      if (plainGreedy(row)) {
        drafts[i]!.push(argmax(scores));
        return;
      }
      const dist = distribution(scores, row, () => [...row.tokens, ...drafts[i]!]);
      q[i]!.push(dist);
      drafts[i]!.push(sampleIndex(dist, row.rng));
    });
  }
  const t1 = performance.now();
  // The target, once: every unseen token and every draft, scoring the last n + 1 positions.
  const chunks = rows.map((r, i) => Int32Array.from([...r.tokens.slice(r.target.length), ...drafts[i]!]));
  const pass = passScores(target, chunks, rows.map((r) => r.target), n.map((x) => x + 1));
  const [logits] = yield [pass];
  if (stats) {
    stats.draftSeconds += (t1 - t0) / 1000;
    stats.targetSeconds += (performance.now() - t1) / 1000;
  }
  let scoredRow = 0;
  return rows.map((row, i) => {
    // Row i's scores at its j-th checked position.
    const scores = (j: number) => logits!.subarray((scoredRow + j) * V, (scoredRow + j + 1) * V);
    const out = plainGreedy(row) ? checkGreedy((j) => argmax(scores(j)), drafts[i]!) : checkSampled(scores, drafts[i]!, q[i]!, row);
    scoredRow += n[i]! + 1;
    settleRound(row, n[i]!, out, stats);
    return out;
  });
}

/**
 * The end of a row's round: it emits `out` (its kept drafts, then the
 * target's own token), its caches are cut back to the context up to the new
 * last token (the refused drafts dropped), and the totals count the round.
 */
export function settleRound(row: SpeculativeRow, drafted: number, out: readonly number[], stats?: SpeculativeStats): void {
  const L = row.tokens.length;
  const kept = out.length - 1; // drafts kept; the last token is the target's own
  row.target.truncate(L + kept);
  if (row.draft.length > L + kept) row.draft.truncate(L + kept);
  row.tokens.push(...out);
  if (!stats) return;
  stats.rounds++;
  stats.drafted += drafted;
  stats.accepted += kept;
  stats.emitted += out.length;
  for (let j = 0; j < drafted; j++) {
    stats.draftedAt[j] = (stats.draftedAt[j] ?? 0) + 1;
    if (j < kept) stats.acceptedAt[j] = (stats.acceptedAt[j] ?? 0) + 1;
  }
}

/**
 * The acceptance rule for drafts d with draft distributions q: each kept with
 * probability min(1, p(x)/q(x)), the first refusal replaced by a draw from
 * the residual, a bonus token when all are kept. Returns the emitted tokens.
 */
function checkSampled(scores: (j: number) => Float32Array, d: readonly number[], q: readonly Float64Array[], row: SpeculativeRow): number[] {
  const out: number[] = [];
  for (let j = 0; j <= d.length; j++) {
    const p = distribution(scores(j), row, () => [...row.tokens, ...out]);
    if (j === d.length) {
      out.push(sampleIndex(p, row.rng)); // every draft kept: the bonus token (or, with no draft, a plain step)
      break;
    }
    const ratio = p[d[j]!]! / q[j]![d[j]!]!;
    if (ratio >= 1 || row.rng.random() < ratio) {
      out.push(d[j]!);
      continue;
    }
    out.push(sampleResidual(p, q[j]!, row.rng));
    break;
  }
  return out;
}

/** The same rule when p and q are one-hot (plainGreedy): the target's argmax at each position (`pick(j)`), while the drafts agree with it. */
export function checkGreedy(pick: (j: number) => number, d: readonly number[]): number[] {
  const out: number[] = [];
  for (let j = 0; j <= d.length; j++) {
    out.push(pick(j));
    if (out[j] !== d[j]) break; // a refused draft, or (j = d.length) the bonus token
  }
  return out;
}

/** After a refused draft token: a draw from norm(max(0, p − q)), the mass the target wants that the draft under-proposed. */
function sampleResidual(p: Float64Array, q: Float64Array, rng: Rng): number {
  const residual = p.map((pv, t) => Math.max(0, pv - q[t]!));
  // p ≠ q whenever a token is refused, so the residual has mass; rounding could still leave none.
  return residual.some((r) => r > 0) ? sampleIndex(residual, rng) : sampleIndex(p, rng);
}

export interface SpeculativeOptions {
  /** The small model that proposes tokens; it must share the target's tokenizer and vocabulary. */
  draft: CausalLM;
  /** Tokens proposed per round (default 4); with adaptiveK, the most per round. */
  k?: number;
  /**
   * Choose the tokens per round as decoding goes (draft_length.ts), from the
   * running acceptance rate and the measured cost of a draft step against a
   * verifying pass. Greedy output is the same; a sampling seed no longer
   * reproduces a run exactly (k depends on timings).
   */
  adaptiveK?: boolean;
  /** Totals to update (acceptance rate, tokens per target pass). */
  stats?: SpeculativeStats;
}

/**
 * Decoding with a draft, with BatchDecoder's surface (streamText takes
 * either). A round emits several tokens per row; `step` hands them out one at
 * a time and runs the next round for the rows that have none left. Unlike
 * BatchDecoder it does not slide the window: a row ends when the target's
 * context is full (positions are absolute, and re-running the window each
 * step would undo what the draft saves).
 */
export class SpeculativeDecoder implements Decoder {
  readonly done: boolean[];
  readonly k: number;
  readonly stats: SpeculativeStats;
  /** The adaptive draft length, when asked for. */
  readonly draftLength: DraftLength | null;
  private readonly rows: SpeculativeRow[];
  private readonly queued: number[][];
  private readonly generated: number[];
  private readonly stop: ReadonlySet<number>;

  constructor(
    private readonly target: CausalLM,
    prompts: ReadonlyArray<ArrayLike<number>>,
    private readonly opts: GenerateOptions & SpeculativeOptions,
  ) {
    const k = opts.k ?? 4;
    if (!(Number.isInteger(k) && k >= 1)) throw new UserError(`draft tokens per round (k) must be an integer ≥ 1 (got ${k})`);
    if (opts.constraint) throw new UserError('constrained decoding cannot use a draft model: drop the draft or the schema');
    if (opts.cache === false) throw new UserError('speculative decoding needs the KV cache: drop the draft or --no-cache');
    checkDraftModel(target, opts.draft);
    this.k = k;
    this.stats = opts.stats ?? new SpeculativeStats();
    this.draftLength = opts.adaptiveK ? new DraftLength(k) : null;
    const prompts_ = checkedPrompts(target, prompts, opts);
    const size = (m: CausalLM, p: number[]) => Math.min(m.config.block_size, p.length + opts.maxNewTokens + k);
    this.rows = prompts_.map((p, b) => ({
      tokens: p,
      target: new KVCache(target.config, 1, size(target, p)),
      draft: new KVCache(opts.draft.config, 1, size(opts.draft, p)),
      sampling: opts,
      rng: new Rng((opts.seed ?? 1337) + b),
      budget: opts.maxNewTokens,
    }));
    this.queued = this.rows.map(() => []);
    this.generated = this.rows.map(() => 0);
    this.done = this.rows.map(() => opts.maxNewTokens === 0);
    this.stop = new Set(opts.stopTokens ?? []);
  }

  get finished(): boolean {
    return this.done.every(Boolean);
  }

  finish(row: number): void {
    this.done[row] = true;
  }

  step(): Array<number | null> {
    const round = this.nextRound();
    if (round) round.settle(speculativeRound(this.target, this.opts.draft, round.rows, round.k, this.stats));
    return this.handOut();
  }

  /** step() on any backend (speculativeRoundAsync: on a device a greedy round waits once, for every pick). */
  async stepAsync(): Promise<Array<number | null>> {
    if (!backend().device) return this.step();
    const round = this.nextRound();
    if (round) round.settle(await speculativeRoundAsync(this.target, this.opts.draft, round.rows, round.k, this.stats));
    return this.handOut();
  }

  /** The rows that have no tokens left to hand out run a round: which, with how many drafts, and what to do with its tokens. */
  private nextRound(): { rows: SpeculativeRow[]; k: number; settle(out: number[][]): void } | null {
    const refill = this.rows.flatMap((_, b) => (!this.done[b] && this.queued[b]!.length === 0 ? [b] : []));
    if (refill.length === 0) return null;
    for (const b of refill) this.rows[b]!.budget = this.opts.maxNewTokens - this.generated[b]!;
    const rows = refill.map((b) => this.rows[b]!);
    const before = { draft: this.stats.draftSeconds, target: this.stats.targetSeconds };
    const k = this.draftLength?.next ?? this.k;
    const planned = rows.map((r) => draftCount(r, k));
    const settle = (out: number[][]) => {
      refill.forEach((b, i) => this.queued[b]!.push(...out[i]!));
      if (this.draftLength) {
        out.forEach((o, i) => this.draftLength!.observeRow(planned[i]!, o.length - 1));
        this.draftLength.observeTimes(Math.max(0, ...planned), this.stats.draftSeconds - before.draft, this.stats.targetSeconds - before.target);
      }
    };
    return { rows, k, settle };
  }

  /** Each unfinished row's next token from what its rounds emitted. */
  private handOut(): Array<number | null> {
    return this.rows.map((row, b) => {
      if (this.done[b]) return null;
      const id = this.queued[b]!.shift()!;
      if (this.stop.has(id)) {
        this.done[b] = true;
        return null;
      }
      const contextFull = this.queued[b]!.length === 0 && row.tokens.length > row.target.capacity;
      if (++this.generated[b]! >= this.opts.maxNewTokens || contextFull) this.done[b] = true;
      return id;
    });
  }
}

/** Tokens for one prompt, as `generate` (engine.ts), proposed by a draft and checked by the target. */
export function* generateSpeculative(target: CausalLM, prompt: ArrayLike<number>, opts: GenerateOptions & SpeculativeOptions): Generator<number> {
  const models = [target, opts.draft];
  const wasTraining = models.map((m) => m.training);
  for (const m of models) m.eval();
  try {
    const dec = new SpeculativeDecoder(target, [prompt], opts);
    while (!dec.finished) {
      const id = dec.step()[0];
      if (id !== null && id !== undefined) yield id;
    }
  } finally {
    models.forEach((m, i) => m.train(wasTraining[i]));
  }
}

/** A draft must score the same vocabulary as the target: refuse one that does not, naming the difference. */
export function checkDraftModel(target: CausalLM, draft: CausalLM): void {
  const [t, d] = [target.config.vocab_size, draft.config.vocab_size];
  if (t !== d) throw new UserError(`the draft model scores ${d} tokens but the target ${t}: a draft needs the target's vocabulary`);
}

/** And the same tokenizer: the same ids for the same text. Names the first difference. */
export function checkDraftTokenizer(target: Tokenizer, draft: Tokenizer): void {
  const differ = (what: string) => {
    throw new UserError(`the draft model's tokenizer differs from the target's: ${what}`);
  };
  if (target.type !== draft.type) differ(`it is ${draft.type}, the target's is ${target.type}`);
  if (target.vocabSize !== draft.vocabSize) differ(`it has ${draft.vocabSize} tokens, the target's ${target.vocabSize}`);
  for (const [name, id] of target.specialTokens) if (draft.specialTokens.get(name) !== id) differ(`special token ${name} is ${draft.specialTokens.get(name) ?? 'absent'} in the draft, ${id} in the target`);
  const bytes = (tok: Tokenizer, id: number) => (tok.decodeBytes ? Buffer.from(tok.decodeBytes([id])).toString('hex') : tok.decode([id]));
  for (let id = 0; id < target.vocabSize; id++) {
    const [a, b] = [bytes(target, id), bytes(draft, id)];
    if (a !== b) differ(`token ${id} is ${JSON.stringify(draft.decode([id]))} in the draft, ${JSON.stringify(target.decode([id]))} in the target`);
  }
}
