import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BPETokenizer, PATTERNS, tokenizerFromJSON, trainBPE, type Merge } from '../src/tokenizers/index.js';
import { scanGPT2 } from '../src/tokenizers/gpt2_scan.js';
import { regexSplitter } from '../src/tokenizers/pretokenize.js';
import { fablesCorpus } from '../src/data/fables.js';

const pieces = (split: (t: string, f: (s: number, e: number) => void) => void, text: string): string[] => {
  const out: string[] = [];
  split(text, (s, e) => out.push(text.slice(s, e)));
  return out;
};

/** Strings from characters that exercise every branch of GPT-2's pattern. */
const tricky = fc.string({
  unit: fc.constantFrom(
    'a', 'Z', 'é', '日', 'ß', '1', '٣', 'Ⅻ', '²', "'", 's', 't', 'r', 'e', 'v', 'l', 'd', 'm', 'S',
    ' ', ' ', ' ', '\t', '\n', '\r', '\u00a0', '\u3000', '\u2028', '\ufeff', '\u000b',
    '!', '.', '-', '🙂', '👨‍👩‍👧', '\u0301', '\u200d', '\ud800', '\udc00', 'ש', '\u200f',
  ),
  maxLength: 40,
});

describe('GPT-2 pre-tokenizer scanner', () => {
  it('cuts text exactly as the GPT-2 regex does (property)', () => {
    const regex = regexSplitter(PATTERNS.gpt2);
    fc.assert(fc.property(tricky, (s) => assert.deepEqual(pieces(scanGPT2, s), pieces(regex, s))), { numRuns: 3000 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => assert.deepEqual(pieces(scanGPT2, s), pieces(regex, s))), { numRuns: 1000 });
  });

  it('splits words, contractions, numbers and whitespace runs the GPT-2 way', () => {
    assert.deepEqual(pieces(scanGPT2, "I'll  say it's 2024!\n\n  Ok"), ['I', "'ll", ' ', ' say', ' it', "'s", ' 2024', '!', '\n\n ', ' Ok']);
  });

  it('GPT-4 (cl100k) pattern keeps digits in threes and contractions in any case', () => {
    const split = regexSplitter(PATTERNS.cl100k);
    assert.deepEqual(pieces(split, "WE'LL pay 1234567"), ['WE', "'LL", ' pay', ' ', '123', '456', '7']);
  });
});

/** The textbook trainer: recount every pair of every word before each merge. */
function naiveMerges(text: string, vocabSize: number): Merge[] {
  const counts = new Map<string, number>();
  for (const p of pieces(regexSplitter(PATTERNS.gpt2), text)) counts.set(p, (counts.get(p) ?? 0) + 1);
  const words = [...counts].map(([w, c]) => ({ ids: Array.from(new TextEncoder().encode(w)), c }));
  const merges: Merge[] = [];
  while (256 + merges.length < vocabSize) {
    const pairs = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.ids.length; i++) pairs.set(`${w.ids[i]},${w.ids[i + 1]}`, (pairs.get(`${w.ids[i]},${w.ids[i + 1]}`) ?? 0) + w.c);
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [k, c] of pairs) {
      const [a, b] = k.split(',').map(Number) as [number, number];
      if (c > bestCount || (c === bestCount && best && (a < best[0] || (a === best[0] && b < best[1])))) [best, bestCount] = [[a, b], c];
    }
    if (!best) break;
    const id = 256 + merges.length;
    merges.push([best[0], best[1], id]);
    for (const w of words) {
      const next: number[] = [];
      for (let i = 0; i < w.ids.length; i++) {
        if (i + 1 < w.ids.length && w.ids[i] === best[0] && w.ids[i + 1] === best[1]) next.push(id), i++;
        else next.push(w.ids[i]!);
      }
      w.ids = next;
    }
  }
  return merges;
}

describe('BPE training', () => {
  it('learns the textbook example: aaabdaaabac', () => {
    const tok = trainBPE('aaabdaaabac', { vocabSize: 259 });
    assert.deepEqual(tok.merges, [[97, 97, 256], [97, 98, 257], [256, 257, 258]]);
    assert.deepEqual(Array.from(tok.encode('aaabdaaabac')), [258, 100, 258, 97, 99]);
  });

  it('incremental pair counting learns the same merges as recounting every time (property)', () => {
    const text = fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', 'ab', 'é', '\n', '🙂', '.'), minLength: 1, maxLength: 200 });
    fc.assert(
      fc.property(text, fc.integer({ min: 257, max: 300 }), (t, v) => {
        assert.deepEqual(trainBPE(t, { vocabSize: v }).merges, naiveMerges(t, v));
      }),
      { numRuns: 150 },
    );
    const fables = fablesCorpus(20_000);
    assert.deepEqual(trainBPE(fables, { vocabSize: 400 }).merges, naiveMerges(fables, 400));
  });

  it('reserves special tokens after the merges, reports progress, and refuses a vocabulary below the byte alphabet', () => {
    const calls: number[] = [];
    const tok = trainBPE(fablesCorpus(5000), { vocabSize: 300, specialTokens: ['<|endoftext|>'], onProgress: (d) => calls.push(d) });
    assert.equal(tok.vocabSize, 300);
    assert.equal(tok.specialTokens.get('<|endoftext|>'), 299);
    assert.equal(calls.at(-1), 43);
    assert.throws(() => trainBPE('abc', { vocabSize: 256, specialTokens: ['<|endoftext|>'] }), /vocab size 256 is smaller than the base alphabet: 256 bytes \+ 1 special tokens = 257/);
    assert.throws(() => trainBPE('abc', { vocabSize: 100 }), /smaller than the base alphabet/);
  });

  it('does not learn across special tokens', () => {
    const tok = trainBPE('<|endoftext|><|endoftext|><|endoftext|>ab', { vocabSize: 258, specialTokens: ['<|endoftext|>'] });
    assert.deepEqual(tok.merges, [[97, 98, 256]]);
  });
});

describe('byte-level BPE encoding', () => {
  const tok = trainBPE(fablesCorpus(40_000) + ' 日本語 🙂 naïve', { vocabSize: 600, specialTokens: ['<|endoftext|>', '<|pad|>'] });

  it('round-trips every valid string and never fails on lone surrogates (property)', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) => assert.equal(tok.decode(tok.encode(s)), s)), { numRuns: 1000 });
    fc.assert(fc.property(tricky, (s) => assert.equal(tok.decode(tok.encode(s)), s.replace(/\p{Cs}/gu, '\ufffd'))), { numRuns: 1000 });
    assert.equal(tok.decode(tok.encode('a\ud800b')), 'a\ufffdb', 'a lone surrogate becomes U+FFFD, as UTF-8 requires');
  });

  it('saves and loads to the same encoding (property)', () => {
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    assert.ok(back instanceof BPETokenizer);
    assert.equal(back.vocabSize, tok.vocabSize);
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), (s) => assert.deepEqual(back.encode(s), tok.encode(s))), { numRuns: 300 });
  });

  it('applies the special-token policy: disallowed by default, allowed on request, or plain text', () => {
    const text = 'the end<|endoftext|>the start';
    assert.throws(() => tok.encode(text), /special token "<\|endoftext\|>", which is not allowed/);
    const allowed = tok.encode(text, { allowedSpecial: 'all' });
    assert.equal(allowed.filter((id) => id === tok.specialTokens.get('<|endoftext|>')).length, 1);
    assert.equal(tok.decode(allowed), text);
    const onlyPad = tok.encode('<|pad|>x', { allowedSpecial: new Set(['<|pad|>']) });
    assert.equal(onlyPad[0], tok.specialTokens.get('<|pad|>'));
    const plain = tok.encode(text, { disallowedSpecial: [] });
    assert.ok(!plain.includes(tok.specialTokens.get('<|endoftext|>')!), 'encoded as ordinary text');
    assert.equal(tok.decode(plain), text);
  });

  it('rejects out-of-range ids and corrupt files clearly', () => {
    assert.throws(() => tok.decode([600]), /token id 600 is outside the vocabulary of 600/);
    assert.throws(() => tok.decode([-1]), /token id -1 is outside/);
    const good = tok.toJSON() as Record<string, unknown>;
    const corrupt = (patch: Record<string, unknown>): unknown => ({ ...good, ...patch });
    assert.throws(() => tokenizerFromJSON(corrupt({ version: 9 }), 't.json'), /t.json: unsupported BPE tokenizer version 9/);
    assert.throws(() => tokenizerFromJSON(corrupt({ merges: [[1, 2]] }), 't.json'), /"merges" must be an array of \[left, right, id\] triples/);
    assert.throws(() => tokenizerFromJSON(corrupt({ merges: [[1, 999, 256]], special_tokens: {} }), 't.json'), /merge 0 \(1 \+ 999\) uses a token that no earlier byte or merge defines/);
    assert.throws(() => tokenizerFromJSON(corrupt({ merges: [[1, 2, 3]], special_tokens: {} }), 't.json'), /id 3 is used twice/);
    assert.throws(() => tokenizerFromJSON(corrupt({ byte_ids: [1, 2] }), 't.json'), /"byte_ids" must be 256 token ids/);
    assert.throws(() => tokenizerFromJSON(corrupt({ pattern: '(' }), 't.json'), /not a valid JavaScript regex/);
    assert.throws(() => tokenizerFromJSON([1, 2], 't.json'), /expected a JSON object/);
  });
});
