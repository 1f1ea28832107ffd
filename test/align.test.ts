import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { instructions, REFUSAL } from '../src/data/instructions.js';
import { preferencePairs } from '../src/data/preferences.js';
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
    assert.deepEqual(Object.keys(result), ['base_exact', 'sft_exact', 'sft_preferred', 'dpo_preferred', 'reward_accuracy', 'seconds']);
    for (const k of ['base_exact', 'sft_exact', 'sft_preferred', 'dpo_preferred', 'reward_accuracy']) assert.ok(result[k] >= 0 && result[k] <= 1, k);
    assert.ok(result.seconds > 0);
    for (const d of ['base', 'sft', 'reward', 'dpo']) assert.ok(existsSync(join(out, d, 'config.json')), d);
    // Every stage left its data where the commands can read it again.
    assert.ok(readFileSync(join(out, 'prefs.jsonl'), 'utf8').includes(REFUSAL));
  });
});
