import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { alignCorpus, CORPUS_LINE_SHARES, instructions, REFUSAL } from '../src/data/instructions.js';
import { lookupShares } from '../src/cli/align.js';
import { preferencePairs } from '../src/data/preferences.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { heldOutSplit, promptKey } from '../src/train/sft_data.js';
import { replyBudget, replyOutcome } from '../src/train/sft_eval.js';
import { runAttn } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'attn-align-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('alignment demo data', () => {
  it('instructions have one right answer each, of every kind', () => {
    const list = instructions(50, 1);
    assert.deepEqual([...new Set(list.map((x) => x.kind))].sort(), ['arithmetic', 'capitals', 'copy', 'reverse', 'story']);
    for (const x of list) {
      if (x.kind === 'arithmetic') {
        const m = /^What is (\d) (plus|minus) (\d)\?$/.exec(x.prompt)!;
        const [a, b] = [Number(m[1]), Number(m[3])];
        assert.equal(x.answer, m[2] === 'plus' ? `${a} + ${b} = ${a + b}` : `${a} - ${b} = ${a - b}`);
      }
      if (x.kind === 'reverse') assert.equal([...x.answer].reverse().join(''), /^Spell (\w+) backwards\.$/.exec(x.prompt)![1]);
      if (x.kind === 'story') assert.ok(x.prompt.includes(`has ${x.answer}.`));
    }
  });

  it('the held-out split keeps repeated instructions together: none of them is also trained on', () => {
    const list = instructions(600, 4);
    const rows = list.map((x) => [{ role: 'user' as const, content: x.prompt }, { role: 'assistant' as const, content: x.answer }]);
    const leaked = (s: { train: number[]; val: number[] }): number => {
      const trained = new Set(s.train.map((i) => list[i]!.prompt));
      return s.val.filter((i) => trained.has(list[i]!.prompt)).length;
    };
    // The generated rows repeat prompts (24 words per word task), so a plain row split leaks …
    assert.ok(leaked(heldOutSplit(list.length, 0.1, 9)) > 0);
    // … and the split by prompt does not, still holding out about a tenth.
    const s = heldOutSplit(list.length, 0.1, 9, rows.map(promptKey));
    assert.equal(leaked(s), 0);
    assert.ok(s.val.length >= 50 && s.val.length <= 60, String(s.val.length));
    assert.equal(s.train.length + s.val.length, list.length);
    for (const kind of ['arithmetic', 'story']) assert.ok(s.val.some((i) => list[i]!.kind === kind), kind);
  });

  it('the base corpus: look-up stories answered from their own lines, several look-ups each when asked, never the question form', () => {
    const check = (text: string): number[] => {
      const stories = text.split('\n').filter((l) => l.startsWith('The ') && l.includes(' So the '));
      assert.ok(stories.length > 20);
      for (const line of stories) {
        const [story, ...asked] = line.split(' So the ');
        const facts = new Map([...story!.matchAll(/The (\w+) has ([a-z ]+)\./g)].map((m) => [m[1]!, m[2]!]));
        for (const q of asked) {
          const m = /^(\w+) has ([a-z ]+)\.$/.exec(q.trim())!;
          assert.equal(facts.get(m[1]!), m[2], line);
        }
      }
      assert.ok(!text.includes('What does') && !text.includes('<|im_start|>'));
      return stories.map((l) => l.split(' So the ').length - 1);
    };
    assert.deepEqual([...new Set(check(alignCorpus(20_000, 5)))], [1]);
    const counts = check(alignCorpus(20_000, 5, { queries: 3 }));
    assert.ok(Math.max(...counts) === 3 && Math.min(...counts) === 1);
  });

  it('the corpus mix can be reweighted by line kind; without shares the draw is unchanged', () => {
    const kinds = (text: string): Record<string, number> => {
      const c: Record<string, number> = { sums: 0, differences: 0, backwards: 0, capitals: 0, say: 0, stories: 0 };
      for (const l of text.split('\n').slice(1)) {
        if (/^\d \+ \d = \d+\.$/.test(l)) c.sums!++;
        else if (/^\d - \d = \d\.$/.test(l)) c.differences!++;
        else if (/^The word \w+ backwards is \w+\.$/.test(l)) c.backwards!++;
        else if (/^The word \w+ in capitals is [A-Z]+\.$/.test(l)) c.capitals!++;
        else if (/^Say \w+: \w+\.$/.test(l)) c.say!++;
        else if (l.includes(' So the ')) c.stories!++;
      }
      return c;
    };
    // The defaults written out as shares give the same text as no shares.
    assert.equal(alignCorpus(30_000, 7, { queries: 3, shares: { ...CORPUS_LINE_SHARES } }), alignCorpus(30_000, 7, { queries: 3 }));
    const plain = kinds(alignCorpus(60_000, 7, { queries: 3 }));
    const words = kinds(alignCorpus(60_000, 7, { queries: 3, shares: { backwards: 0.6, stories: 0 } }));
    assert.equal(words.stories, 0);
    const all = Object.values(words).reduce((a, b) => a + b, 0);
    // backwards 0.6 / (1 - 0.15 + 0.6 - 0.27) ≈ 0.51 of the fact lines
    assert.ok(Math.abs(words.backwards! / all - 0.6 / 1.18) < 0.03, JSON.stringify(words));
    assert.ok(words.backwards! / all > (2 * plain.backwards!) / Object.values(plain).reduce((a, b) => a + b, 0));
    assert.throws(() => alignCorpus(1_000, 7, { shares: { sums: -1 } }), /non-negative/);
    assert.throws(() => alignCorpus(1_000, 7, { stories: 0.5, shares: { sums: 1 } }), /not both/);
    // The look-up stage's mix with the sums' share given: sums and stories as asked, the other kinds in their default proportions.
    const mix = lookupShares(0.5, 0.27);
    assert.equal(mix.sums, 0.27);
    assert.equal(mix.stories, 0.5);
    assert.ok(Math.abs(Object.values(mix).reduce((a, b) => a + b, 0) - 1) < 1e-12);
    assert.ok(Math.abs(mix.differences / mix.backwards - CORPUS_LINE_SHARES.differences / CORPUS_LINE_SHARES.backwards) < 1e-12);
    const drawn = kinds(alignCorpus(60_000, 7, { queries: 3, shares: mix }));
    const lines = Object.values(drawn).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(drawn.sums! / lines - 0.27) < 0.03 && Math.abs(drawn.stories! / lines - 0.5) < 0.03, JSON.stringify(drawn));
    assert.throws(() => lookupShares(0.8, 0.3), /at most 1/);
  });

  it('a miss is named by how it went wrong', () => {
    assert.equal(replyOutcome('a map', 'a map'), 'ok');
    assert.equal(replyOutcome('a map<|im_end', 'a map'), 'runs_on');
    assert.equal(replyOutcome('a m', 'a map'), 'cut_short');
    assert.equal(replyOutcome('', 'a map'), 'empty');
    assert.equal(replyOutcome('a bell', 'a map'), 'wrong');
  });

  it('a reply budget leaves room for the end-of-turn marker, ten tokens when it is spelled in characters', () => {
    const tokenizer = CharTokenizer.fromText(`${REFUSAL}<|im_end|>`);
    // The refusal (46 characters), all of "<|im_end|>" (10), then the slack: a budget of 46 + 8 cut every refusal off inside its marker.
    assert.equal(replyBudget(tokenizer, ['Sorry.', REFUSAL], 8), REFUSAL.length + 10 + 8);
  });

  it('preference pairs: out-of-scope requests prefer the refusal, in-scope ones the answer', () => {
    const pairs = preferencePairs(20, 2);
    for (const p of pairs) {
      assert.notEqual(p.chosen, p.rejected);
      assert.equal(p.chosen === REFUSAL, !p.inScope);
      assert.equal(p.rejected === REFUSAL, p.inScope);
    }
  });
});

describe('attn align demo --quick', () => {
  it('runs every stage end to end and ends with the one JSON line', () => {
    const out = join(tmp, 'demo');
    const r = runAttn(['align', 'demo', '--quick', '--out', out], tmp);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.deepEqual(Object.keys(result), ['base_exact', 'sft_exact', 'sft_preferred', 'dpo_preferred', 'reward_accuracy', 'seconds', 'breakdown']);
    // The breakdown adds up to the rates, and no held-out instruction was trained on.
    const b = result.breakdown;
    assert.equal(b.sft.held_out_seen_in_training, 0);
    assert.equal(b.preferred.held_out_distinct_seen_in_training, 0);
    const kinds = Object.values(b.sft.by_kind) as Array<{ rows: number; base_ok: number; sft_ok: number; sft_misses: Record<string, number> }>;
    assert.equal(kinds.reduce((n, k) => n + k.rows, 0), b.sft.held_out_rows);
    assert.equal(kinds.reduce((n, k) => n + k.sft_ok, 0) / b.sft.held_out_rows, result.sft_exact);
    assert.equal(kinds.reduce((n, k) => n + k.base_ok, 0) / b.sft.held_out_rows, result.base_exact);
    for (const k of kinds) assert.equal(k.sft_ok + Object.values(k.sft_misses).reduce((x, y) => x + y, 0), k.rows);
    const { in_scope: inn, out_of_scope: out_ } = b.preferred;
    assert.equal((inn.dpo + out_.dpo) / (inn.rows + out_.rows), result.dpo_preferred);
    assert.equal((inn.sft + out_.sft) / (inn.rows + out_.rows), result.sft_preferred);
    for (const k of ['base_exact', 'sft_exact', 'sft_preferred', 'dpo_preferred', 'reward_accuracy']) assert.ok(result[k] >= 0 && result[k] <= 1, k);
    assert.ok(result.seconds > 0);
    for (const d of ['base', 'sft', 'reward', 'dpo']) assert.ok(existsSync(join(out, d, 'config.json')), d);
    // Every stage left its data where the commands can read it again.
    assert.ok(readFileSync(join(out, 'prefs.jsonl'), 'utf8').includes(REFUSAL));
  });

  it('--tokenizer bpe --positions rope pretrains that base; --base reuses it without pretraining', () => {
    const out = join(tmp, 'bpe');
    const r = runAttn(['align', 'demo', '--quick', '--out', out, '--tokenizer', 'bpe', '--positions', 'rope'], tmp);
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(readFileSync(join(out, 'base', 'config.json'), 'utf8'));
    assert.equal(config.position_encoding, 'rope');
    assert.equal(JSON.parse(readFileSync(join(out, 'base', 'tokenizer.json'), 'utf8')).type, 'bpe');
    const again = join(tmp, 'again');
    const r2 = runAttn(['align', 'demo', '--quick', '--out', again, '--base', join(out, 'base')], tmp);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, /reusing the base model/);
    assert.ok(!existsSync(join(again, 'base')) && existsSync(join(again, 'sft', 'config.json')));
  });

  it('--tokenizer digits pretrains a base with numbers as single tokens and letters as characters', () => {
    const out = join(tmp, 'digits');
    const r = runAttn(['align', 'demo', '--quick', '--out', out, '--tokenizer', 'digits'], tmp);
    assert.equal(r.code, 0, r.stderr);
    const base = JSON.parse(readFileSync(join(out, 'base', 'tokenizer.json'), 'utf8'));
    assert.equal(base.type, 'digits');
    assert.ok(base.vocab.includes('10') && base.vocab.includes('a'));
    const sft = JSON.parse(readFileSync(join(out, 'sft', 'tokenizer.json'), 'utf8'));
    assert.deepEqual(sft.special, ['<|im_start|>', '<|im_end|>']);
  });
});
