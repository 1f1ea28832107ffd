import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CharTokenizer, tokenizerFromJSON } from '../src/tokenizers/index.js';

describe('character tokenizer', () => {
  it('round-trips text, including characters outside the BMP', () => {
    const text = 'Hello, world! naïve 🙂 日本';
    const tok = CharTokenizer.fromText(text);
    assert.equal(tok.decode(tok.encode(text)), text);
    assert.equal(tok.vocabSize, new Set(Array.from(text)).size);
    assert.equal(tok.encode('🙂').length, 1, 'an emoji is one token, not two UTF-16 halves');
  });

  it('has a sorted vocabulary independent of text order', () => {
    assert.deepEqual(CharTokenizer.fromText('cab').chars, ['a', 'b', 'c']);
    assert.deepEqual(CharTokenizer.fromText('bca').chars, ['a', 'b', 'c']);
  });

  it('survives JSON and rejects bad input clearly', () => {
    const tok = CharTokenizer.fromText('abc');
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    assert.deepEqual(Array.from(back.encode('cab')), Array.from(tok.encode('cab')));
    assert.throws(() => tok.encode('abd'), /"d" is not in the tokenizer's vocabulary/);
    assert.throws(() => tok.decode([7]), /outside the vocabulary/);
    assert.throws(() => tokenizerFromJSON({ type: 'bpe' }), /unsupported tokenizer type "bpe"/);
    assert.throws(() => tokenizerFromJSON({ type: 'char', chars: ['ab'] }), /single characters/);
  });
});
