import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ChatTemplate } from '../src/chat/template.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { buildTokenizer, DigitsTokenizer, tokenizerFromJSON } from '../src/tokenizers/index.js';
import { encodeConversation } from '../src/train/sft_data.js';
import { chatVocabulary, CHATML_MARKERS } from '../src/train/sft_vocabulary.js';
import { Rng } from '../src/util/rng.js';

const pieces = (t: DigitsTokenizer, s: string): string[] => Array.from(t.encode(s), (id) => t.vocab[id]!);

describe('digits tokenizer (characters, numbers whole)', () => {
  it('keeps letters as characters and makes each number of the text one token', () => {
    const t = DigitsTokenizer.fromText('9 + 8 = 17. The word owl backwards is lwo. 5 - 3 = 2.');
    assert.deepEqual(pieces(t, '9 + 8 = 17.'), ['9', ' ', '+', ' ', '8', ' ', '=', ' ', '17', '.']);
    assert.deepEqual(pieces(t, 'owl 17'), ['o', 'w', 'l', ' ', '17']);
    assert.equal(t.vocabSize, new Set(Array.from('9 + 8 = 17. The word owl backwards is lwo. 5 - 3 = 2.')).size + 1);
    assert.equal(buildTokenizer('digits', '12 ab').type, 'digits');
  });

  it('cuts a run of digits greedily into known numbers, single digits otherwise', () => {
    const t = DigitsTokenizer.fromText('123456 17 9');
    assert.deepEqual(pieces(t, '1234'), ['123', '4']);
    assert.deepEqual(pieces(t, '1717'), ['17', '17']);
    assert.deepEqual(pieces(t, '71'), ['7', '1']);
  });

  it('round-trips any text of its characters', () => {
    const t = DigitsTokenizer.fromText('0123456789 abc+=.\n10 11 12 99 100 123');
    fc.assert(fc.property(fc.array(fc.constantFrom(...'0123456789 abc+=.\n'), { maxLength: 40 }), (cs) => {
      const s = cs.join('');
      assert.equal(t.decode(t.encode(s)), s);
    }));
  });

  it('survives JSON, special tokens included, and rejects bad input clearly', () => {
    const t = DigitsTokenizer.fromText('ab 12').extended(['?'], ['<|im_end|>']);
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(t.toJSON())));
    assert.ok(back instanceof DigitsTokenizer);
    assert.deepEqual(Array.from(back.encode('12?<|im_end|>', { allowedSpecial: 'all' })), Array.from(t.encode('12?<|im_end|>', { allowedSpecial: 'all' })));
    assert.equal(back.specialTokens.get('<|im_end|>'), t.vocabSize - 1);
    assert.throws(() => t.encode('<|im_end|>'), /special token/);
    assert.throws(() => t.encode('abz'), /"z" is not in the tokenizer's vocabulary/);
    assert.throws(() => t.decode([99]), /outside the vocabulary/);
    assert.throws(() => tokenizerFromJSON({ type: 'digits', vocab: ['ab'] }), /neither one character/);
    assert.throws(() => tokenizerFromJSON({ type: 'digits', vocab: ['a', 'a'] }), /duplicate/);
  });

  it('for chat fine-tuning: the markers become special tokens, new characters are appended, old ids stay', () => {
    const chatml = new ChatTemplate(undefined, {});
    const t = DigitsTokenizer.fromText('user assistant 3 + 5 = 8 What is');
    const model = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 64, vocab_size: t.vocabSize }), new Rng(1));
    const conversation = [{ role: 'user', content: 'What is 3 plus 5?' }, { role: 'assistant', content: '3 + 5 = 8' }];
    const grown = chatVocabulary(model, t, [chatml.render(conversation)], CHATML_MARKERS);
    assert.deepEqual(grown.added, ['\n', '?', 'l', 'p', '<|im_start|>', '<|im_end|>']);
    const g = grown.tokenizer as DigitsTokenizer;
    assert.deepEqual(g.vocab.slice(0, t.vocabSize), t.vocab);
    assert.equal(grown.model.config.vocab_size, t.vocabSize + 6);
    const e = encodeConversation(chatml, g, conversation, 1);
    assert.equal(Array.from(e.ids).filter((id) => id === g.specialTokens.get('<|im_end|>')).length, 2);
    assert.equal(g.decode(Array.from(e.ids)), chatml.render(conversation));
  });
});
