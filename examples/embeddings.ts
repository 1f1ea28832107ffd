/**
 * The article, section "Embeddings": instead of numbering characters
 * (a = 1, b = 2, …, which says "b is twice a"), give each one a vector of
 * numbers that training learns, one row of a table. A word made of pieces
 * ("cats" = "cat" + "s") is then the sum of the pieces' vectors (same length,
 * but order is lost) or their concatenation (order kept, twice as long).
 *
 *   npm run build && node dist/examples/embeddings.js
 */
import { Embedding } from '../src/nn/embedding.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { add } from '../src/tensor/ops/elementwise.js';
import { sum } from '../src/tensor/ops/reduce.js';
import { concat } from '../src/tensor/ops/shape.js';
import { Tensor } from '../src/tensor/tensor.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { Rng } from '../src/util/rng.js';
import { vec } from './format.js';
import { isMain } from './is_main.js';

export const ALPHABET = 'abcdefghijklmnopqrstuvwxyz ';
/** Width of every vector in this example (real models use hundreds). */
export const DIM = 4;

/** One learned vector per character: an Embedding table, rows in alphabet order. */
export function characterTable(seed = 0): { tokenizer: CharTokenizer; table: Embedding } {
  const tokenizer = new CharTokenizer(Array.from(ALPHABET));
  return { tokenizer, table: new Embedding(tokenizer.vocabSize, DIM, { std: 1, rng: new Rng(seed) }) };
}

/** The vectors of a text's characters, [length, DIM] row by row. */
export function lookUp(table: Embedding, tokenizer: CharTokenizer, text: string): number[][] {
  const ids = tokenizer.encode(text);
  const out = noGrad(() => table.forward(ids, [ids.length]));
  return Array.from(ids, (_, i) => [...out.data.subarray(i * DIM, (i + 1) * DIM)]);
}

/**
 * Which rows of the table a loss on `text` gives a gradient: only the rows
 * of the characters it uses — training moves exactly the vectors it saw.
 */
export function rowsTouched(table: Embedding, tokenizer: CharTokenizer, text: string): string[] {
  table.zeroGrad();
  const ids = tokenizer.encode(text);
  backward(sum(table.forward(ids, [ids.length])));
  const g = table.weight.grad!;
  return Array.from(ALPHABET).filter((_, row) => g.subarray(row * DIM, (row + 1) * DIM).some((v) => v !== 0));
}

/** The sub-word pieces of the example, each with its own learned vector. */
export const PIECES = ['cat', 's', 'dog', 'un', 'happy'];

export function pieceTable(seed = 1): Embedding {
  return new Embedding(PIECES.length, DIM, { std: 1, rng: new Rng(seed) });
}

const pieceVector = (table: Embedding, piece: string): Tensor => {
  const id = PIECES.indexOf(piece);
  if (id < 0) throw new Error(`"${piece}" is not one of the pieces ${PIECES.join(', ')}`);
  return table.forward(Int32Array.of(id), [1]);
};

/** A word as the sum of its pieces' vectors: as long as one piece, blind to their order. */
export function wordBySum(table: Embedding, pieces: string[]): number[] {
  return noGrad(() => [...pieces.map((p) => pieceVector(table, p)).reduce((a, b) => add(a, b)).data]);
}

/** A word as the concatenation of its pieces' vectors: order kept, one block per piece. */
export function wordByConcat(table: Embedding, pieces: string[]): number[] {
  return noGrad(() => [...concat(pieces.map((p) => pieceVector(table, p)), 1).data]);
}

function main(): void {
  const { tokenizer, table } = characterTable();
  console.log(`each of the ${tokenizer.vocabSize} characters has a learned vector of ${DIM} numbers:`);
  const word = 'cats';
  lookUp(table, tokenizer, word).forEach((v, i) => console.log(`  "${word[i]}" → ${vec(v)}`));
  console.log(`a loss on "${word}" moves only these rows: ${rowsTouched(table, tokenizer, word).map((c) => `"${c}"`).join(', ')}`);
  const pieces = pieceTable();
  console.log('\n"cats" as pieces "cat" + "s":');
  console.log(`  "cat" ${vec(wordBySum(pieces, ['cat']))}   "s" ${vec(wordBySum(pieces, ['s']))}`);
  console.log(`  sum:           ${vec(wordBySum(pieces, ['cat', 's']))}  (${DIM} numbers)`);
  console.log(`  "s" + "cat":   ${vec(wordBySum(pieces, ['s', 'cat']))}  (the same: a sum forgets order)`);
  console.log(`  concatenation: ${vec(wordByConcat(pieces, ['cat', 's']))}  (${2 * DIM} numbers, order kept)`);
}

if (isMain(import.meta.url)) main();
