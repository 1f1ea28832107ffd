/**
 * The article, section "Sub-word tokenizers": characters make sequences long,
 * whole words make the vocabulary huge and leave new words unknown. Byte-pair
 * encoding (BPE) starts from single bytes and repeatedly merges the pair that
 * occurs most often into a new token, so frequent words become one token and
 * rare ones split into familiar pieces ("cats" → "cat" + "s"). Here attn's
 * BPE trainer (GPT-2's method) on a tiny text, merge by merge.
 *
 *   npm run build && node dist/examples/subword_tokenizer.js
 */
import type { BPETokenizer } from '../src/tokenizers/bpe.js';
import { trainBPE } from '../src/tokenizers/bpe_train.js';
import { isMain } from './is_main.js';

export const TEXT = `the cat sat on the mat. the cats sat on the mats.
the dog sat on the log. the dogs sat on the logs.
a cat and a dog. the cats and the dogs. that cat, that hat.
`;

/** How many merges the example learns. */
export const MERGES = 16;

export const train = (text = TEXT, merges = MERGES): BPETokenizer => trainBPE(text, { vocabSize: 256 + merges });

/** Each merge as text: the two tokens that became one, in the order they were learned. */
export function mergeList(tok: BPETokenizer): Array<{ left: string; right: string; merged: string }> {
  return tok.merges.map(([l, r, id]) => ({ left: tok.decode([l]), right: tok.decode([r]), merged: tok.decode([id]) }));
}

/** A text cut into its tokens' strings. */
export const pieces = (tok: BPETokenizer, text: string): string[] => Array.from(tok.encode(text), (id) => tok.decode([id]));

const show = (s: string): string => JSON.stringify(s).replace(/ /g, '␣');

function main(): void {
  const tok = train();
  console.log(`training text: ${TEXT.length} characters, ${new TextEncoder().encode(TEXT).length} bytes → ${tok.encode(TEXT).length} tokens after ${MERGES} merges`);
  mergeList(tok).forEach((m, i) => console.log(`  merge ${String(i + 1).padStart(2)}: ${show(m.left)} + ${show(m.right)} → ${show(m.merged)}`));
  for (const w of [' cats', ' mats', ' hats', ' dogma']) console.log(`${show(w).padEnd(9)} → ${pieces(tok, w).map(show).join(' ')}`);
  console.log('a word never seen ("hats", "dogma") still encodes: into the pieces it shares with known words, down to single bytes.');
}

if (isMain(import.meta.url)) main();
