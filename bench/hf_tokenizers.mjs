// attn's Hugging Face tokenizers beside @huggingface/tokenizers on the real
// tokenizer files of Llama 3, Qwen3, Llama 2 and Gemma 3: load time and
// encode time of a 1 MB text (tinyshakespeare with code, numbers and
// unicode mixed in), interleaved, median of 3; the ids must be equal.
//
// Usage (after `npx tsc -p tsconfig.json`): node bench/hf_tokenizers.mjs [llama3 qwen3 …]
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Tokenizer as HFReference } from '@huggingface/tokenizers';
import { loadTokenizerFile } from '../dist/src/tokenizers/index.js';
import { realTokenizerDir, REAL_TOKENIZERS } from '../dist/test/real_tokenizers.js';

const shakespeare = resolve('..', 'shared', 'data', 'tinyshakespeare.txt');
const extra = 'def f(x):\n\treturn x ** 2  # 12345 3.14\ncafé naïve 你好世界 👨‍👩‍👧 émoji\n\n   spaces   here\n';
let text = existsSync(shakespeare) ? readFileSync(shakespeare, 'utf8') : '';
const parts = [];
let size = 0;
for (let i = 0; size < 1_000_000; i++) {
  const chunk = text ? text.slice((i * 4000) % (text.length - 4000), ((i * 4000) % (text.length - 4000)) + 4000) : 'The quick brown fox. ';
  parts.push(chunk, extra);
  size += Buffer.byteLength(chunk) + Buffer.byteLength(extra);
}
text = parts.join('');
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const time = (f) => {
  const t = performance.now();
  const r = f();
  return [performance.now() - t, r];
};

for (const name of process.argv.length > 2 ? process.argv.slice(2) : REAL_TOKENIZERS) {
  const dir = realTokenizerDir(name);
  const load = { attn: [], hf: [] };
  const encode = { attn: [], hf: [] };
  let ids = { attn: null, hf: null };
  for (let rep = 0; rep < 3; rep++) {
    // Fresh tokenizers each round, so neither side's piece cache is warm.
    const [la, ours] = time(() => loadTokenizerFile(dir));
    const [lh, ref] = time(() => new HFReference(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'))));
    load.attn.push(la);
    load.hf.push(lh);
    const [ea, a] = time(() => ours.encode(text, { allowedSpecial: 'all' }));
    const [eh, h] = time(() => ref.encode(text, { add_special_tokens: false }).ids);
    encode.attn.push(ea);
    encode.hf.push(eh);
    ids = { attn: a, hf: h };
  }
  const same = ids.attn.length === ids.hf.length && ids.attn.every((x, i) => x === ids.hf[i]);
  console.log(JSON.stringify({
    tokenizer: name,
    text_bytes: Buffer.byteLength(text),
    tokens: ids.attn.length,
    same_ids: same,
    load_ms: { attn: Math.round(median(load.attn)), hf: Math.round(median(load.hf)) },
    encode_ms: { attn: Math.round(median(encode.attn)), hf: Math.round(median(encode.hf)) },
    encode_mb_per_s: { attn: +(Buffer.byteLength(text) / 1e3 / median(encode.attn)).toFixed(2), hf: +(Buffer.byteLength(text) / 1e3 / median(encode.hf)).toFixed(2) },
  }));
}
