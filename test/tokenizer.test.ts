import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CharTokenizer, tokenizerFromJSON, WordTokenizer } from '../src/tokenizers/index.js';
import { splitSpecial } from '../src/tokenizers/special.js';

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
    assert.throws(() => tokenizerFromJSON({ type: 'bpe2' }), /unsupported tokenizer type "bpe2"/);
    assert.throws(() => tokenizerFromJSON({ type: 'char', chars: ['ab'] }), /single characters/);
    assert.throws(() => tokenizerFromJSON({ type: 'char', chars: ['a', 'a'] }), /duplicate/);
  });

  it('round-trips any string of its own characters (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }), (s) => {
        const tok = CharTokenizer.fromText(s);
        assert.equal(tok.decode(tok.encode(s)), s);
        const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
        assert.deepEqual(back.encode(s), tok.encode(s));
      }),
      { numRuns: 200 },
    );
  });
});

describe('word tokenizer', () => {
  it('splits on whitespace and punctuation, keeping spacing so decoding is exact', () => {
    const text = "The cat's hat.  The cats\tsat!\n";
    const tok = WordTokenizer.fromText(text, 100);
    const pieces = Array.from(tok.encode(text), (id) => tok.words[id]);
    assert.deepEqual(pieces, ['The', ' ', 'cat', "'", 's', ' ', 'hat', '.', '  ', 'The', ' ', 'cats', '\t', 'sat', '!', '\n']);
    assert.equal(tok.decode(tok.encode(text)), text);
  });

  it('caps the vocabulary by frequency and maps other words to <unk> (id 0)', () => {
    const tok = WordTokenizer.fromText('b b b a a c', 3); // words by count: ' ' (5), b (3); then a, c cut
    assert.deepEqual(tok.words, ['<unk>', ' ', 'b']);
    assert.equal(tok.vocabSize, 3);
    assert.equal(tok.decode(tok.encode('b a zebra')), 'b <unk> <unk>');
    assert.equal(tok.specialTokens.get('<unk>'), 0);
  });

  it('without space tokens: words and punctuation only, decoded one space apart, saved and loaded as such', () => {
    const text = "The cat's hat.  The cats\tsat!\n";
    const tok = WordTokenizer.fromText(text, 100, false);
    assert.ok(tok.words.every((w) => w.trim() === w), 'no white space in the vocabulary');
    const pieces = Array.from(tok.encode(text), (id) => tok.words[id]);
    assert.deepEqual(pieces, ['The', 'cat', "'", 's', 'hat', '.', 'The', 'cats', 'sat', '!']);
    assert.equal(tok.decode(tok.encode('The cats sat')), 'The cats sat');
    assert.deepEqual(tok.toJSON(), { type: 'word', words: tok.words, spaces: false });
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    assert.deepEqual(back.encode(text), tok.encode(text));
    assert.deepEqual(WordTokenizer.fromText(text, 100).toJSON(), { type: 'word', words: WordTokenizer.fromText(text, 100).words }, 'the default is saved as before');
    assert.throws(() => tokenizerFromJSON({ type: 'word', words: ['<unk>', ' ', 'a'], spaces: false }), /white space/);
    assert.throws(() => tokenizerFromJSON({ type: 'word', words: ['<unk>', 'a'], spaces: 'no' }), /"spaces" must be true or false/);
  });

  it('lower-case: learned and encoded folded, so a capitalised word is the word; saved and loaded as such', () => {
    const text = 'Cheese making is old. The town lives from cheese making.';
    const tok = WordTokenizer.fromText(text, 100, false, true);
    assert.ok(tok.words.every((w) => w === w.toLowerCase()), 'no upper case in the vocabulary');
    assert.equal(tok.words.filter((w) => w === 'cheese').length, 1);
    assert.deepEqual(tok.encode('CHEESE Making'), tok.encode('cheese making'));
    assert.ok(!tok.encode('Cheese making').includes(0), 'no unknown word');
    const plain = WordTokenizer.fromText(text, 100, false);
    assert.ok(plain.encode('CHEESE').includes(0), 'without folding, a word in another case is unknown');
    assert.deepEqual(tok.toJSON(), { type: 'word', words: tok.words, spaces: false, lowercase: true });
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    assert.deepEqual(back.encode('The Town'), tok.encode('the town'));
    assert.equal(WordTokenizer.fromText(text, 100, true, true).encode('The Town').length, 3, 'with space tokens too');
    assert.throws(() => tokenizerFromJSON({ type: 'word', words: ['<unk>', 'A'], lowercase: true }), /upper-case word/);
    assert.throws(() => tokenizerFromJSON({ type: 'word', words: ['<unk>', 'a'], lowercase: 'yes' }), /"lowercase" must be true or false/);
  });

  it('breaks frequency ties by string order, so the vocabulary does not depend on text order', () => {
    assert.deepEqual(WordTokenizer.fromText('y x', 10).words, WordTokenizer.fromText('x y', 10).words);
  });

  it('round-trips text made of known words, and saves and loads (property)', () => {
    const word = fc.constantFrom('cat', 'cats', 'sat', 'on', 'the', 'mat', 'naïve', '日本', '🙂', 'x_1', '42');
    const sep = fc.constantFrom(' ', '  ', '\n', ', ', '. ', '!', "'");
    fc.assert(
      fc.property(fc.array(fc.tuple(word, sep), { minLength: 1, maxLength: 30 }), (parts) => {
        const text = parts.map(([w, s]) => w + s).join('');
        const tok = WordTokenizer.fromText(text, 1000);
        assert.equal(tok.decode(tok.encode(text)), text);
        const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
        assert.deepEqual(back.encode(text), tok.encode(text));
      }),
      { numRuns: 100 },
    );
  });

  it('rejects bad sizes, ids and files clearly', () => {
    assert.throws(() => WordTokenizer.fromText('a b', 1), /vocab size 1 is too small/);
    const tok = WordTokenizer.fromText('a b', 10);
    assert.throws(() => tok.decode([99]), /token id 99 is outside the vocabulary of 4/); // <unk>, a, ' ', b
    assert.throws(() => tokenizerFromJSON({ type: 'word', words: ['a'] }, 'w.json'), /w.json: the first word must be <unk>/);
    assert.throws(() => tokenizerFromJSON({ type: 'word', words: ['<unk>', 'a', 'a'] }), /appears twice/);
    assert.throws(() => tokenizerFromJSON({ type: 'word', words: 'abc' }), /"words" must be an array/);
  });
});

describe('special tokens', () => {
  it('an empty special token is never matched: splitting ends (it looped forever)', () => {
    const specials = new Map([['', 9], ['<|end|>', 10]]);
    assert.deepEqual(splitSpecial('a<|end|>b', specials, { allowedSpecial: 'all' }), [{ text: 'a' }, { text: '<|end|>', special: 10 }, { text: 'b' }]);
    assert.deepEqual(splitSpecial('ab', new Map([['', 9]]), { allowedSpecial: 'all' }), [{ text: 'ab' }]);
  });
});
