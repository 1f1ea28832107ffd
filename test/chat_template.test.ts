import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HFReference } from '@huggingface/tokenizers';
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE, parseChatMessages, stopTokenIds } from '../src/chat/index.js';
import { runTokenize } from '../src/cli/tokenize.js';
import { loadTokenizerFile } from '../src/tokenizers/index.js';
import { assertUserError, runAttn } from './helpers.js';
import { REAL_TOKENIZER_PACKAGES, REAL_TOKENIZERS, realTokenizerDir } from './real_tokenizers.js';
import { refereesOrSkip } from './referees.js';

const work = mkdtempSync(join(tmpdir(), 'attn-chat-'));
const MESSAGES = [
  { role: 'system', content: 'You are a terse assistant.' },
  { role: 'user', content: 'What is 12345 + 3.14?' },
  { role: 'assistant', content: '12348.14' },
  { role: 'user', content: 'Et en français ? 你好 👋' },
];
const messagesFile = join(work, 'messages.json');
writeFileSync(messagesFile, JSON.stringify(MESSAGES));

const readConfig = (dir: string): Record<string, any> => JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));

describe('chat templates of real models, rendered as @huggingface/jinja renders them', { skip: refereesOrSkip(REAL_TOKENIZER_PACKAGES) }, () => {
  for (const name of REAL_TOKENIZERS) {
    it(`${name}: attn tokenize --chat prints jinja's rendering (add_generation_prompt) and the reference tokenizer's ids`, () => {
      const dir = realTokenizerDir(name);
      const config = readConfig(dir);
      // Llama 2's package ships no template: attn uses its documented default, ChatML.
      const expected = new Template(config.chat_template ?? DEFAULT_CHAT_TEMPLATE).render({
        messages: MESSAGES,
        add_generation_prompt: true,
        bos_token: config.bos_token,
        eos_token: config.eos_token,
      });
      let out = '';
      runTokenize({ tokenizer: dir, chat: messagesFile, json: true }, undefined, (s) => (out += s));
      const got = JSON.parse(out) as { text: string; ids: number[] };
      assert.equal(got.text, expected);
      const ref = new HFReference(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), config);
      assert.deepEqual(got.ids, ref.encode(expected, { add_special_tokens: false }).ids);
      let plain = '';
      runTokenize({ tokenizer: dir, chat: messagesFile }, undefined, (s) => (plain += s));
      assert.equal(plain, `${expected}\n${got.ids.join(' ')}\n`);
    });
  }

  it('knows each format\'s end-of-turn tokens, as ids of the tokenizer', () => {
    const expected: Record<string, string[]> = { llama3: ['<|end_of_text|>', '<|eot_id|>'], qwen3: ['<|im_end|>'], gemma3: ['<end_of_turn>'] };
    for (const [name, stops] of Object.entries(expected)) {
      const dir = realTokenizerDir(name);
      const template = ChatTemplate.fromTokenizerConfig(readConfig(dir));
      assert.deepEqual([...template.stopTokens].sort(), [...stops].sort(), name);
      const tokenizer = loadTokenizerFile(dir);
      assert.deepEqual(stopTokenIds(template, tokenizer), template.stopTokens.map((t) => tokenizer.encode(t, { allowedSpecial: 'all' })[0]));
    }
  });

  it('passes tools through to the template (Qwen3 lists them in its system turn)', () => {
    const config = readConfig(realTokenizerDir('qwen3'));
    const tools = [{ type: 'function', function: { name: 'add', description: 'Add two numbers', parameters: { type: 'object', properties: { a: { type: 'number' } } } } }];
    const text = ChatTemplate.fromTokenizerConfig(config).render(MESSAGES, { addGenerationPrompt: true, tools });
    assert.match(text, /# Tools[\s\S]*"name": "add"/);
    assert.equal(text, new Template(config.chat_template).render({ messages: MESSAGES, add_generation_prompt: true, tools, eos_token: config.eos_token }));
  });

  it('a template that raises (Gemma: roles must alternate) is a UserError with the template\'s own message', () => {
    const template = ChatTemplate.fromTokenizerConfig(readConfig(realTokenizerDir('gemma3')));
    assert.throws(
      () => template.render([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }]),
      (e: Error) => e.name === 'UserError' && /chat template failed to render: Conversation roles must alternate user\/assistant/.test(e.message),
    );
  });
});

describe('chat templates: defaults and bad input', () => {
  it('without a template, ChatML; a list of named templates uses "default"', () => {
    const t = ChatTemplate.fromTokenizerConfig({ eos_token: '</s>' });
    assert.ok(t.isDefault);
    assert.equal(t.render([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true }), '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
    assert.deepEqual(t.stopTokens, ['</s>', '<|im_end|>']);
    const named = ChatTemplate.fromTokenizerConfig({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: '{{ bos_token }}{{ messages[0].content }}' }], bos_token: { content: '<s>' } });
    assert.equal(named.render([{ role: 'user', content: 'x' }]), '<s>x');
    assert.throws(() => ChatTemplate.fromTokenizerConfig({ chat_template: [{ name: 'tool_use', template: 'T' }] }), /without a "default" template \(it has: "tool_use"\)/);
    assert.throws(() => ChatTemplate.fromTokenizerConfig({ chat_template: '{% for %}' }), /chat_template does not parse/);
    assert.throws(() => new ChatTemplate('{{ messages[0].content.nope() }}', {}).render([{ role: 'user', content: 'x' }]), /the chat template failed to render: /);
  });

  it('messages must be an array of {role, content}', () => {
    assert.throws(() => parseChatMessages({ role: 'user' }, 'm.json'), /m.json: expected an array of messages/);
    assert.throws(() => parseChatMessages([], 'm.json'), /m.json: no messages/);
    assert.throws(() => parseChatMessages(['hi'], 'm.json'), /message 0 is not an object/);
    assert.throws(() => parseChatMessages([{ role: 'user', content: 'a' }, { content: 'b' }], 'm.json'), /message 1 needs a "role" string/);
    assert.throws(() => parseChatMessages([{ role: 'user', content: 3 }], 'm.json'), /message 0 needs a "content" string/);
  });

  it('attn tokenize --chat: bad messages and a failing template are one line, non-zero exit', () => {
    const dir = join(work, 'tok');
    // A tiny tokenizer directory, with a template that raises when an assistant speaks first.
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2, '<|im_end|>': 3 }, merges: ['a b'] }, added_tokens: [{ id: 3, content: '<|im_end|>', special: true }], normalizer: null, pre_tokenizer: null, decoder: null, post_processor: null }));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}{{ messages[0].content }}<|im_end|>" }));
    const good = join(work, 'good.json');
    writeFileSync(good, JSON.stringify([{ role: 'user', content: 'abba' }]));
    const ok = runAttn(['tokenize', '--tokenizer', dir, '--chat', good, '--json'], process.cwd());
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { text: 'abba<|im_end|>', ids: [2, 1, 0, 3] });
    const raises = join(work, 'raises.json');
    writeFileSync(raises, JSON.stringify([{ role: 'assistant', content: 'ab' }]));
    assertUserError(runAttn(['tokenize', '--tokenizer', dir, '--chat', raises], process.cwd()), /the chat template failed to render: first message must be from the user/);
    const notArray = join(work, 'obj.json');
    writeFileSync(notArray, '{"role": "user", "content": "ab"}');
    assertUserError(runAttn(['tokenize', '--tokenizer', dir, '--chat', notArray], process.cwd()), /obj.json: expected an array of messages/);
    writeFileSync(notArray, '[{"role": "user"');
    assertUserError(runAttn(['tokenize', '--tokenizer', dir, '--chat', notArray], process.cwd()), /obj.json: invalid JSON/);
  });
});
