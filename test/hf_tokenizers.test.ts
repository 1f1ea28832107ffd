import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Tokenizer as HFReference } from '@huggingface/tokenizers';
import { splitBy } from '../src/tokenizers/hf/pre_tokenizer.js';
import { HFTokenizer, loadTokenizerFile, streamDecoder } from '../src/tokenizers/index.js';
import { REAL_TOKENIZER_PACKAGES, REAL_TOKENIZERS, realTokenizerDir } from './real_tokenizers.js';
import { refereesOrSkip } from './referees.js';

const TEXTS: Record<string, string> = {
  english: 'The quick brown fox jumps over the lazy dog. It\'s 5 o\'clock; WE\'LL see, won\'t we?',
  code: 'function add(a, b) {\n\treturn a + b; // sum\n}\nconst xs = [1, 2, 3].map((x) => x ** 2);\n',
  numbers: '12345 3.14 -0.001 1,000,000 2024-12-04 0x1F',
  whitespace: 'a  b   c    d\t\te \u00a0f      ',
  newlines: '\n\nline one\r\nline two\n\n\n  indented\n',
  tabs: '\tone\t\ttwo\t',
  accents: 'café naïve résumé Ångström Über façade',
  cjk: '你好，世界。日本語のテキスト。한국어 텍스트',
  emoji: 'family 👨‍👩‍👧‍👦 flags 🇫🇷 thumbs 👍🏽 ✨',
  mixed: 'Ünïcödé 42 — «quotes» ‘single’ … ∑∞ x²',
  leading: ' leading space and trailing ',
  empty: '',
  specials: '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|im_start|>user\nhello<|im_end|><s>[INST] a [/INST]</s><bos><start_of_turn>user\nhey<end_of_turn>',
};

describe('Hugging Face tokenizer.json files of today\'s models agree with @huggingface/tokenizers', { skip: refereesOrSkip(REAL_TOKENIZER_PACKAGES) }, () => {
  for (const name of REAL_TOKENIZERS) {
    it(`${name}: same ids on every test text, with and without special tokens, and decode inverts encode`, () => {
      const dir = realTokenizerDir(name);
      const ours = loadTokenizerFile(dir);
      assert.ok(ours instanceof HFTokenizer, 'a full Hugging Face pipeline, not the GPT-2 fast path');
      const ref = new HFReference(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')));
      for (const [what, text] of Object.entries(TEXTS)) {
        for (const add of [false, true]) {
          const got: number[] = Array.from(ours.encode(text, { allowedSpecial: 'all', addSpecialTokens: add }));
          assert.deepEqual(got, ref.encode(text, { add_special_tokens: add }).ids, `${name}, ${what}, addSpecialTokens ${add}`);
        }
        const ids = ours.encode(text, { allowedSpecial: 'all' });
        if (ids.length === 0) continue;
        assert.equal(ours.decode(ids), ref.decode(Array.from(ids), { clean_up_tokenization_spaces: false }), `${name}, ${what}: decode`);
        // SentencePiece's normalizer prepends "▁" to the text after each special
        // token too (Hugging Face does the same), so only plain text round-trips.
        if (what === 'specials') continue;
        const roundTrip = ours.decode(ids);
        assert.ok(roundTrip === text || roundTrip === ' ' + text, `${name}, ${what}: round trip gave ${JSON.stringify(roundTrip)}`);
        // Streaming one id at a time gives the same text (up to that first space).
        const step = streamDecoder(ours);
        const streamed = Array.from(ids, (id) => step(id)).join('');
        assert.ok(streamed === roundTrip || streamed === ' ' + roundTrip, `${name}, ${what}: streamed ${JSON.stringify(streamed)}`);
      }
    });
  }

  it('refuses special tokens in text unless allowed, and encodes them as text when asked', () => {
    const t = loadTokenizerFile(realTokenizerDir('qwen3'));
    assert.throws(() => t.encode('a<|im_end|>b'), /special token "<\|im_end\|>", which is not allowed/);
    const asText = Array.from(t.encode('<|im_end|>', { disallowedSpecial: [] }));
    assert.ok(asText.length > 1 && !asText.includes(t.specialTokens.get('<|im_end|>')!));
    assert.deepEqual(Array.from(t.encode('<|im_end|>', { allowedSpecial: ['<|im_end|>'] })), [t.specialTokens.get('<|im_end|>')]);
  });
});

describe('Hugging Face tokenizer.json: hand-made files', () => {
  const work = mkdtempSync(join(tmpdir(), 'attn-hf-tok-'));
  /** A tiny SentencePiece-style BPE: "▁" for spaces, byte fallback, <unk>, <s>. */
  const tiny = (): Record<string, any> => ({
    version: '1.0',
    added_tokens: [
      { id: 0, content: '<unk>', special: true, normalized: false },
      { id: 1, content: '<s>', special: true, normalized: false },
    ],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: {
      type: 'BPE',
      unk_token: '<unk>',
      byte_fallback: true,
      vocab: {
        '<unk>': 0, '<s>': 1,
        ...Object.fromEntries(Array.from({ length: 256 }, (_, b) => [`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 2 + b])),
        '▁': 258, h: 259, i: 260, '▁h': 261, '▁hi': 262, t: 263, '▁t': 264,
      },
      merges: ['▁ h', '▁h i', '▁ t'],
    },
  });
  const save = (o: Record<string, any>, name: string): string => {
    const p = join(work, name);
    writeFileSync(p, JSON.stringify(o));
    return p;
  };

  it('merges, falls back to bytes for characters outside the vocabulary, adds BOS when asked', () => {
    const t = loadTokenizerFile(save(tiny(), 'tiny.json'));
    assert.deepEqual(Array.from(t.encode('hi hit')), [262, 262, 263]);
    assert.deepEqual(Array.from(t.encode('hi', { addSpecialTokens: true })), [1, 262]);
    assert.deepEqual(Array.from(t.encode('hé')), [261, 2 + 0xc3, 2 + 0xa9]); // é is not in the vocabulary: its two UTF-8 bytes
    assert.equal(t.decode(t.encode('hé hi')), 'hé hi');
  });

  it('without byte_fallback, a character outside the vocabulary is <unk>', () => {
    const o = tiny();
    o.model.byte_fallback = false;
    const t = loadTokenizerFile(save(o, 'unk.json'));
    assert.deepEqual(Array.from(t.encode('hé')), [261, 0]);
  });

  it('long pieces (a whole text is one piece here) merge with the heap exactly as short ones do', () => {
    const t = loadTokenizerFile(save(tiny(), 'tiny2.json'));
    const words = Array.from({ length: 400 }, (_, i) => ['hi', 'h', 'it', 'thi', 'ih'][i % 5]).join(' ');
    const whole = Array.from(t.encode(words));
    const wordByWord = words.split(' ').flatMap((w) => Array.from(t.encode(w)));
    assert.deepEqual(whole, wordByWord);
  });

  it('added tokens: lstrip and rstrip take the spaces beside them, single_word only matches whole words, normalized ones match after normalizing', () => {
    const o = tiny();
    o.added_tokens.push(
      { id: 265, content: '<sep>', special: true, normalized: false, lstrip: true, rstrip: true },
      { id: 266, content: 'hh', special: false, normalized: false, single_word: true },
    );
    o.model.vocab = { ...o.model.vocab, '<sep>': 265, hh: 266 };
    const t = loadTokenizerFile(save(o, 'added.json'));
    // "hi  <sep>  hi": the spaces around <sep> are gone, so the second "hi" is a new section ("▁hi").
    assert.deepEqual(Array.from(t.encode('hi  <sep>  hi', { allowedSpecial: 'all' })), [262, 265, 262]);
    assert.deepEqual(Array.from(t.encode('hh')), [266]);
    assert.deepEqual(Array.from(t.encode('hhi')), [261, 259, 260]); // "hh" inside a word is not the added token
    // A normalized added token is matched in the normalized text: "TT" lowercased is "tt".
    const n = tiny();
    n.normalizer = { type: 'Lowercase' };
    n.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' };
    n.added_tokens.push({ id: 265, content: 'tt', special: false, normalized: true });
    n.model.vocab = { ...n.model.vocab, tt: 265 };
    assert.deepEqual(Array.from(loadTokenizerFile(save(n, 'normalized.json')).encode('Hi TT')), [262, 258, 265]);
  });

  it('without a post-processor, tokenizer_config.json\'s add_bos_token says whether BOS is added', () => {
    const o = tiny();
    o.post_processor = null;
    const dir = mkdtempSync(join(work, 'bos-'));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(o));
    assert.deepEqual(Array.from(loadTokenizerFile(dir).encode('hi', { addSpecialTokens: true })), [262]);
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: true, bos_token: { content: '<s>' } }));
    assert.deepEqual(Array.from(loadTokenizerFile(dir).encode('hi', { addSpecialTokens: true })), [1, 262]);
    assert.deepEqual(Array.from(loadTokenizerFile(join(dir, 'tokenizer.json')).encode('hi', { addSpecialTokens: true })), [1, 262], 'the config beside a tokenizer.json is read too');
  });

  it('Split behaviors cut text as the tokenizers library does', () => {
    const cut = (behavior: string, invert = false): string[] => splitBy('a--b-c', /-/gu, behavior, invert);
    assert.deepEqual(cut('Isolated'), ['a', '-', '-', 'b', '-', 'c']);
    assert.deepEqual(cut('Removed'), ['a', 'b', 'c']);
    assert.deepEqual(cut('MergedWithPrevious'), ['a-', '-', 'b-', 'c']);
    assert.deepEqual(cut('MergedWithNext'), ['a', '-', '-b', '-c']);
    assert.deepEqual(cut('Contiguous'), ['a', '--', 'b', '-', 'c']);
    assert.deepEqual(splitBy('ab12cd3', /\d+/gu, 'Removed', true), ['12', '3']);
  });

  it('Metaspace and Digits pre-tokenizers', () => {
    const o = tiny();
    o.normalizer = null;
    o.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true }, { type: 'Digits', individual_digits: true }] };
    o.model.vocab = { ...o.model.vocab, 1: 268, 2: 269 };
    const t = loadTokenizerFile(save(o, 'meta.json'));
    assert.deepEqual(Array.from(t.encode('hi hi')), [262, 262]);
    assert.deepEqual(Array.from(t.encode('hi<s>hi', { allowedSpecial: 'all' })), [262, 1, 259, 260], 'prepend_scheme "first": no "▁" after a special token');
    assert.deepEqual(Array.from(t.encode('12')), [258, 268, 269]);
  });

  it('names the unsupported feature: model, normalizer, pre-tokenizer, decoder, post-processor', () => {
    const cases: Array<[(o: Record<string, any>) => void, RegExp]> = [
      [(o) => (o.model.type = 'Unigram'), /model type "Unigram" is not supported/],
      [(o) => (o.normalizer = { type: 'BertNormalizer' }), /normalizer type "BertNormalizer" is not supported/],
      [(o) => (o.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Precompiled' }] }), /normalizer type "Precompiled" is not supported/],
      [(o) => (o.pre_tokenizer = { type: 'BertPreTokenizer' }), /pre_tokenizer type "BertPreTokenizer" is not supported/],
      [(o) => (o.pre_tokenizer = { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Scattered' }), /Split behavior "Scattered" is not supported/],
      [(o) => (o.decoder = { type: 'CTC' }), /decoder type "CTC" is not supported/],
      [(o) => (o.post_processor = { type: 'BertProcessing' }), /post_processor type "BertProcessing" is not supported/],
      [(o) => (o.model.continuing_subword_prefix = '##'), /continuing_subword_prefix is not supported/],
      [(o) => (o.model.merges = ['▁ q']), /merge 0: "q" is not in the vocabulary/],
    ];
    for (const [patch, message] of cases) {
      const o = tiny();
      patch(o);
      assert.throws(() => loadTokenizerFile(save(o, 'bad.json')), (e: Error) => e.name === 'UserError' && message.test(e.message) && e.message.includes('bad.json'));
    }
  });
});
