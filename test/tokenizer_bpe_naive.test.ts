import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { gpt2FromJsTiktoken } from '../src/bench/tokenizers.js';
import { fablesCorpus } from '../src/data/fables.js';
import type { BPETokenizer } from '../src/tokenizers/bpe.js';
import { mergePair, mergeRanks, naiveEncodeOrdinary, naiveMergePiece } from '../src/tokenizers/bpe_naive.js';
import { trainBPE } from '../src/tokenizers/bpe_train.js';
import { IdBuffer } from '../src/tokenizers/id_buffer.js';

/** The naive merge loop (bpe_naive.ts) and the incremental one (bpe.ts) give identical ids. */

const fast = (tok: BPETokenizer, text: string): number[] => {
  const out = new IdBuffer(16);
  tok.encodeOrdinary(text, out);
  return Array.from(out.toArray());
};

const VARIED = [
  'The quick brown fox jumps over the lazy dog.',
  "  leading spaces, trailing   \n\n\ttabs and\r\nnewlines  ",
  "It's 3:45pm — we'll see you at 10,000 ft; don't be late!!!",
  'Unicode: café, naïve, Zürich, Ελληνικά, русский, 中文字符, 日本語のテキスト',
  'Emoji 👩‍👩‍👧‍👦🏳️‍🌈 and a lone surrogate \ud800 here',
  'def f(x):\n    return {"a": [1, 2, 3], "b": x ** 2}  # code\n',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbb abababababababab',
  '',
];

describe('naive BPE merge loop beside the incremental one', () => {
  it('mergePair merges left to right, overlapping runs included', () => {
    assert.deepEqual(mergePair([1, 1, 1, 2, 1, 1], 1, 1, 9), [9, 1, 2, 9]);
    assert.deepEqual(naiveMergePiece([1, 2, 3], mergeRanks([[1, 2, 4], [4, 3, 5]])), [5]);
    assert.deepEqual(naiveMergePiece([1, 2, 3], mergeRanks([[2, 3, 4], [1, 2, 5]])), [1, 4], 'the lower rank first');
  });

  const tokenizers: Array<[string, () => BPETokenizer]> = [
    ['trained on the fables, GPT-2 pre-tokenizer', () => trainBPE(fablesCorpus(), { vocabSize: 700 })],
    ['trained on the fables, cl100k pre-tokenizer', () => trainBPE(fablesCorpus(), { vocabSize: 500, pattern: 'cl100k' })],
  ];
  for (const [name, make] of tokenizers) {
    it(`identical ids on varied text: ${name}`, () => {
      const tok = make();
      const ranks = mergeRanks(tok.merges);
      for (const text of [...VARIED, fablesCorpus().slice(0, 5000)]) assert.deepEqual(naiveEncodeOrdinary(tok, text, ranks), fast(tok, text), JSON.stringify(text.slice(0, 40)));
      fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (text) => assert.deepEqual(naiveEncodeOrdinary(tok, text, ranks), fast(tok, text))), { numRuns: 300 });
    });
  }

  it("identical ids with GPT-2's 50 000 merges", async () => {
    const tok = await gpt2FromJsTiktoken();
    assert.ok(tok, 'js-tiktoken (a dev dependency) ships the GPT-2 ranks');
    const ranks = mergeRanks(tok.merges);
    for (const text of [...VARIED, fablesCorpus().slice(0, 3000)]) assert.deepEqual(naiveEncodeOrdinary(tok, text, ranks), fast(tok, text), JSON.stringify(text.slice(0, 40)));
  });
});
