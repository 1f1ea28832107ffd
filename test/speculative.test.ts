import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { generate, generateBatch } from '../src/generate/engine.js';
import { penalizeRepeats, tokenDistribution, type SamplingOptions } from '../src/generate/sampling.js';
import { checkDraftModel, checkDraftTokenizer, generateSpeculative, SpeculativeDecoder, SpeculativeStats } from '../src/generate/speculative.js';
import { generateText } from '../src/generate/stream.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { nearDraft } from './serve_fixture.js';

const addon = loadAddon();
const backends = addon ? ['js', 'native'] : ['js'];
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));

/** A small random GPT with logits spread enough that greedy choices are not near-ties. */
function tinyModel(seed: number, layers: number, vocab = 40, blockSize = 64, spread = 0.05): GPT {
  const m = new GPT(parseGPTConfig({ n_layer: layers, n_head: 2, n_embd: 32, block_size: blockSize, vocab_size: vocab, bias: true }), new Rng(seed));
  const r = new Rng(seed + 1);
  for (const p of m.parameters()) for (let i = 0; i < p.size; i++) p.data[i] = p.data[i]! + r.normal() * spread;
  return m.eval();
}

for (const name of backends) {
  describe(`speculative decoding, greedy (${name} backend)`, () => {
    it('emits exactly the target\'s own greedy tokens, whatever the draft and k', () => {
      setBackend(name);
      const target = tinyModel(3, 4);
      const drafts = { self: target, near: nearDraft(target, 0.02), unrelated: tinyModel(11, 1) };
      for (const p of [[1, 2, 3, 4, 5, 6, 7], [9], [30, 31, 5, 2]]) {
        const want = [...generate(target, p, { maxNewTokens: 40, greedy: true })];
        for (const [kind, draft] of Object.entries(drafts)) {
          for (const k of [1, 3, 6]) {
            const stats = new SpeculativeStats();
            const got = [...generateSpeculative(target, p, { maxNewTokens: 40, greedy: true, draft, k, stats })];
            assert.deepEqual(got, want, `${kind} draft, k ${k}, prompt ${p}`);
            if (kind === 'self') assert.equal(stats.acceptanceRate, 1, 'the target as its own draft is always right');
            assert.ok(stats.rounds < 40 || kind === 'unrelated', `${kind}: ${stats.rounds} target passes for 40 tokens`);
          }
          const adaptive = [...generateSpeculative(target, p, { maxNewTokens: 40, greedy: true, draft, k: 6, adaptiveK: true })];
          assert.deepEqual(adaptive, want, `${kind} draft, adaptive k, prompt ${p}`);
        }
      }
    });

    it('batches several prompts, each with its own caches, the same as one at a time', () => {
      setBackend(name);
      const target = tinyModel(3, 4);
      const draft = nearDraft(target, 0.03);
      const prompts = [[1, 2, 3], [9], [30, 31, 5, 2, 7, 7]];
      const dec = new SpeculativeDecoder(target, prompts, { maxNewTokens: 25, greedy: true, draft, k: 4 });
      const got: number[][] = prompts.map(() => []);
      while (!dec.finished) dec.step().forEach((id, b) => id !== null && got[b]!.push(id));
      prompts.forEach((p, b) => assert.deepEqual(got[b], [...generate(target, p, { maxNewTokens: 25, greedy: true })], `row ${b}`));
    });
  });
}

describe('speculative decoding, sampling', () => {
  /**
   * Exact probabilities of every continuation of `len` tokens under the
   * target alone (its scores after each prefix, sampled as sampleToken would).
   */
  function exactDistribution(target: GPT, prompt: number[], len: number, o: SamplingOptions): Map<string, number> {
    const out = new Map<string, number>();
    const walk = (ctx: number[], prob: number, depth: number) => {
      if (depth === len) return void out.set(ctx.slice(prompt.length).join(','), prob);
      const logits = noGrad(() => target.nextTokenLogits(Int32Array.from(ctx), [1, ctx.length])).data.slice();
      if (o.repetitionPenalty) penalizeRepeats(logits, ctx, o.repetitionPenalty);
      tokenDistribution(logits, o).forEach((p, id) => p > 0 && walk([...ctx, id], prob * p, depth + 1));
    };
    walk(prompt, 1, 0);
    return out;
  }

  /** Pearson's chi-square statistic of observed counts against expected probabilities (cells expected < 5 pooled), and its degrees of freedom. */
  function chiSquare(counts: Map<string, number>, expected: Map<string, number>, n: number): { stat: number; df: number } {
    let stat = 0;
    let df = -1;
    let [poolObs, poolExp] = [0, 0];
    for (const [key, p] of expected) {
      const [o, e] = [counts.get(key) ?? 0, p * n];
      if (e < 5) {
        poolObs += o;
        poolExp += e;
        continue;
      }
      stat += (o - e) ** 2 / e;
      df++;
    }
    if (poolExp > 0) {
      stat += (poolObs - poolExp) ** 2 / poolExp;
      df++;
    }
    // A sample the target could never draw is a discrepancy no count of samples excuses.
    for (const key of counts.keys()) if (!expected.has(key)) stat = Infinity;
    return { stat, df };
  }

  /** The chi-square quantile (Wilson–Hilferty) at upper-tail probability alpha = 0.001 (z = 3.0902). */
  const critical = (df: number) => df * (1 - 2 / (9 * df) + 3.0902 * Math.sqrt(2 / (9 * df))) ** 3;

  /** `n` continuations of `len` tokens, each sample its own seed, all rows decoded together. */
  function sampleMany(draw: (seeds: number[]) => number[][], n: number): Map<string, number> {
    const counts = new Map<string, number>();
    for (let s0 = 0; s0 < n; s0 += 500) {
      for (const ids of draw(Array.from({ length: Math.min(500, n - s0) }, (_, i) => s0 + i))) {
        const key = ids.join(',');
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    return counts;
  }

  /** Steps × rows → each row's ids. */
  const transpose = (steps: Array<Array<number | null>>): number[][] => steps[0]!.map((_, b) => steps.flatMap((s) => (s[b] === null ? [] : [s[b]!])));

  const settings: Array<[string, SamplingOptions]> = [
    ['temperature 1', { temperature: 1 }],
    ['temperature 0.8, top-k 3, repetition penalty 1.3', { temperature: 0.8, topK: 3, repetitionPenalty: 1.3 }],
  ];
  for (const [label, o] of settings) {
    it(`draws the target's distribution exactly (${label}; chi-square, 4 000 samples, α = 0.001)`, () => {
      setBackend('js');
      // Vocabulary 4, 3 new tokens: 64 outcomes. Weights spread wide so the two models really differ.
      const target = tinyModel(5, 2, 4, 16, 0.4);
      const draft = tinyModel(21, 1, 4, 16, 0.4);
      const prompt = [1, 2];
      const len = 3;
      const expected = exactDistribution(target, prompt, len, o);
      const N = 4000;
      const speculative = sampleMany((seeds) => {
        const prompts = seeds.map(() => prompt);
        // Row b samples with seed 7 + s0 + b: one generator per sample.
        const dec = new SpeculativeDecoder(target, prompts, { ...o, maxNewTokens: len, seed: 7 + seeds[0]!, draft, k: 2 });
        const got: number[][] = prompts.map(() => []);
        while (!dec.finished) dec.step().forEach((id, b) => id !== null && got[b]!.push(id));
        return got;
      }, N);
      const { stat, df } = chiSquare(speculative, expected, N);
      assert.ok(stat < critical(df), `chi-square ${stat.toFixed(1)} ≥ ${critical(df).toFixed(1)} (df ${df}): not the target's distribution`);
      // The test can fail: the draft's own samples, same size, are told apart from the target's.
      const draftOnly = sampleMany((seeds) => transpose([...generateBatch(draft, seeds.map(() => prompt), { ...o, maxNewTokens: len, seed: 7 + seeds[0]! })]), N);
      const wrong = chiSquare(draftOnly, expected, N);
      assert.ok(wrong.stat > critical(wrong.df), `the draft alone passed as the target (chi-square ${wrong.stat.toFixed(1)})`);
    });
  }
});

describe('speculative decoding, bad input', () => {
  it('refuses a draft with another vocabulary size, naming both', () => {
    const target = tinyModel(3, 2, 40);
    const draft = tinyModel(4, 1, 41);
    assert.throws(() => checkDraftModel(target, draft), (e: Error) => e instanceof UserError && /41 tokens but the target 40/.test(e.message));
    assert.throws(() => [...generateSpeculative(target, [1], { maxNewTokens: 3, draft })], UserError);
  });

  it('refuses a draft whose tokenizer differs, naming the first different token', () => {
    const chars = 'abcdefgh'.split('');
    assert.doesNotThrow(() => checkDraftTokenizer(new CharTokenizer(chars), new CharTokenizer([...chars])));
    assert.throws(() => checkDraftTokenizer(new CharTokenizer(chars), new CharTokenizer([...chars.slice(0, 7), 'z'])), /token 7 is "z" in the draft, "h" in the target/);
    assert.throws(() => checkDraftTokenizer(new CharTokenizer(chars), new CharTokenizer(chars.slice(0, 7))), /it has 7 tokens, the target's 8/);
  });

  it('refuses constrained decoding and k < 1', () => {
    const target = tinyModel(3, 2);
    assert.throws(() => new SpeculativeDecoder(target, [[1]], { maxNewTokens: 3, draft: target, k: 0 }), /k\) must be an integer ≥ 1/);
  });

  it('streams text through streamText like the target alone (greedy)', async () => {
    setBackend('js');
    const tok = new CharTokenizer('abcdefghijklmnopqrstuvwxyz .,;:!?ABCDEFG'.split(''));
    const target = tinyModel(3, 3);
    const draft = nearDraft(target, 0.03);
    const [plain] = await generateText(target, tok, 'hello', { maxNewTokens: 30, greedy: true });
    const [fast] = await generateText(target, tok, 'hello', { maxNewTokens: 30, greedy: true, speculative: { draft, k: 3 } });
    assert.equal(fast, plain);
  });
});
