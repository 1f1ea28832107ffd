import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { setBackend } from '../src/backend/index.js';
import { randomSchemas } from '../src/bench/random_schemas.js';
import { generate } from '../src/generate/engine.js';
import { advanceAll, startState, type ParseStack } from '../src/generate/constrained/json_automaton.js';
import { JsonConstraint } from '../src/generate/constrained/json_constraint.js';
import { bytesOf } from '../src/generate/constrained/json_grammar.js';
import { compileJsonSchema, SchemaError } from '../src/generate/constrained/json_schema.js';
import { TokenTrie } from '../src/generate/constrained/token_trie.js';
import { gpt2FromJsTiktoken } from '../src/bench/tokenizers.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { Rng } from '../src/util/rng.js';
import { tinyGPT, tinyTokenizer } from './serve_fixture.js';

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 5 },
    age: { type: 'integer' },
    tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 2 },
    ok: { type: 'boolean' },
  },
  required: ['name', 'age', 'tags'],
  additionalProperties: false,
};

const stateAfter = (schema: unknown, text: string): ParseStack | null => advanceAll(startState(compileJsonSchema(schema)), bytesOf(text));

describe('JSON schema → grammar', () => {
  it('names the keyword it cannot compile, and where', () => {
    assert.throws(() => compileJsonSchema({ type: 'object', properties: { x: { type: 'string', pattern: '^a' } } }), (e: Error) => e instanceof SchemaError && /#\/properties\/x/.test(e.message) && /"pattern"/.test(e.message));
    assert.throws(() => compileJsonSchema({ $ref: '#/x' }), /keyword "\$ref" is not supported/);
    assert.throws(() => compileJsonSchema({ type: 'object', properties: { a: { type: 'string' } } }, { strict: true }), /strict mode needs "additionalProperties": false/);
    assert.throws(() => compileJsonSchema({ anyOf: [{ type: 'string' }, { enum: ['x'] }] }), /alternatives 0 and 1 can both start with/);
    assert.throws(() => compileJsonSchema({ type: 'strin' }), /unknown type "strin"/);
    assert.throws(() => compileJsonSchema({ type: 'object', properties: {}, required: ['a'] }), /"a" is required but not in properties/);
  });

  it('accepts exactly the compact documents of the schema', () => {
    const whole = ['{"name":"Bo","age":-12,"tags":["a"]}', '{"name":"","age":0,"tags":[],"ok":true}', '{"name":"héllo","age":7,"tags":["b","a"]}'];
    for (const doc of whole) {
      const s = stateAfter(PERSON, doc);
      assert.ok(s?.finished && s.complete, doc);
    }
    const refused = [
      '{"age":1', // required name skipped
      '{"name":"toolong"', // maxLength 5
      '{"name":"Bo","age":1.5', // integer
      '{"name":"Bo","age":01', // leading zero
      '{"name":"Bo","age":1,"tags":["a","b","a"]', // maxItems
      '{"name":"Bo","age":1,"tags":["c"]', // enum
      '{"name":"Bo","age":1,"tags":[],}', // trailing comma
      '{ "name"', // whitespace: compact JSON only
      '{"name":"Bo","age":1,"tags":[],"zzz"', // unknown key
      '{"name":"a\u0001', // control character
    ];
    for (const doc of refused) assert.equal(stateAfter(PERSON, doc), null, doc);
    assert.equal(stateAfter(PERSON, '{"name":"Bo","age":1')!.complete, false);
  });

  it('knows the fewest bytes that finish a document', () => {
    const empty = stateAfter(PERSON, '')!;
    assert.equal(empty.minBytes, '{"name":"","age":0,"tags":[]}'.length);
    assert.equal(stateAfter(PERSON, '{"name":"Bo","age":1')!.minBytes, ',"tags":[]}'.length);
    assert.equal(stateAfter({ type: 'array', items: { type: 'integer' }, minItems: 3 }, '[1')!.minBytes, ',0,0]'.length);
  });
});

describe('token mask over a trie', () => {
  let gpt2: JsonConstraint | null = null;
  before(async () => {
    setBackend('js');
    const tok = await gpt2FromJsTiktoken();
    if (tok) gpt2 = JsonConstraint.fromSchema(PERSON, tok, 50257, [50256]);
  });

  /** Every token checked alone: the reference the trie walk must equal. */
  function bruteForce(c: JsonConstraint, state: ParseStack, remaining: number): number[] {
    const out: number[] = [];
    for (let id = 0; id < c.trie.vocabSize; id++) {
      const bytes = c.trie.bytesOf(id);
      if (bytes.length === 0) continue;
      const s = advanceAll(state, bytes);
      if (s && s.minBytes <= remaining - 1) out.push(id);
    }
    if (state.complete) out.push(...c.stopTokens);
    return out.sort((a, b) => a - b);
  }

  it('allows exactly the tokens that continue the document (GPT-2 vocabulary, budget or not)', (t) => {
    if (!gpt2) return t.skip('js-tiktoken is not installed');
    for (const prefix of ['', '{', '{"na', '{"name":"', '{"name":"ab', '{"name":"Bo","age":', '{"name":"Bo","age":12', '{"name":"Bo","age":1,"tags":[', '{"name":"Bo","age":1,"tags":["a"]']) {
      const state = stateAfter(PERSON, prefix)!;
      for (const remaining of [Infinity, state.minBytes + 1, state.minBytes + 3]) {
        const { stamp, generation } = gpt2.markAllowed(state, remaining - 1);
        const walked: number[] = [];
        stamp.forEach((g, id) => g === generation && walked.push(id));
        assert.deepEqual(walked, bruteForce(gpt2, state, remaining), `after ${JSON.stringify(prefix)}, ${remaining} tokens left`);
      }
    }
  });

  it('counts a subtree of plain string characters whole, and stops at a quote', () => {
    const trie = new TokenTrie(['ab', 'a"', 'abc', 'x', '"'].map((s) => bytesOf(s)));
    const c = new JsonConstraint(compileJsonSchema({ type: 'string', maxLength: 2 }), trie);
    const doc = c.start();
    assert.deepEqual(doc.allowed(), [4]); // only the opening quote
    doc.accept(4);
    assert.deepEqual(doc.allowed(), [0, 1, 3, 4]); // "abc" is too long
    doc.accept(1); // a"
    assert.ok(doc.finished);
  });
});

describe('constrained generation', () => {
  const ajv = new Ajv({ strict: false });

  function check(schema: object, text: string): void {
    let value: unknown;
    assert.doesNotThrow(() => (value = JSON.parse(text)), `not JSON: ${text}`);
    const validate = ajv.compile(schema);
    assert.ok(validate(value), `${text} fails ${JSON.stringify(schema)}: ${ajv.errorsText(validate.errors)}`);
  }

  it('a random model writes valid documents for 60 random schemas, even with a tight token budget', () => {
    setBackend('js');
    // The schemas' enums hold a few non-ASCII words: the vocabulary must be able to write them.
    const tok = new CharTokenizer([...tinyTokenizer().chars, 'ü', 'ï', '日', '本'].sort());
    const model = tinyGPT(3, 256, tok.vocabSize);
    randomSchemas(60, 7).forEach((schema, i) => {
      const c = JsonConstraint.fromSchema(schema, tok, model.config.vocab_size);
      const budget = i % 3 === 0 ? c.minBytes + 2 : 160;
      const ids = [...generate(model, tok.encode('JSON:'), { maxNewTokens: budget, temperature: 1.5, seed: i, constraint: c })];
      assert.ok(ids.length <= budget);
      check(schema, tok.decode(ids));
    });
  });

  it('json_object: any object, from a GPT-2-sized vocabulary', async (t) => {
    const tok = await gpt2FromJsTiktoken();
    if (!tok) return t.skip('js-tiktoken is not installed');
    setBackend('js');
    const model = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 16, block_size: 128, vocab_size: 50257, bias: true, dropout: 0 }), new Rng(5));
    const c = JsonConstraint.anyObject(tok, 50257, [50256]);
    for (let seed = 0; seed < 4; seed++) {
      const ids = [...generate(model, tok.encode('{'), { maxNewTokens: 40, temperature: 1, topK: 50, seed, constraint: c, stopTokens: [50256] })];
      const value = JSON.parse(tok.decode(ids));
      assert.equal(typeof value, 'object');
      assert.ok(value !== null && !Array.isArray(value));
    }
  });

  it('refuses a budget below the shortest document', () => {
    const tok = tinyTokenizer();
    const c = JsonConstraint.fromSchema(PERSON, tok, 96);
    assert.throws(() => [...generate(tinyGPT(), tok.encode('x'), { maxNewTokens: 5, constraint: c })], /too few for the shortest document/);
  });
});
