/**
 * Generated instructions for the offline alignment demonstration
 * (`attn align demo`): small tasks with one right answer each, so that
 * exact match measures whether a model follows them.
 *
 *   arithmetic   "What is 7 minus 2?"                    → "7 - 2 = 5"
 *   copy         "Repeat the word hare."                 → "hare"
 *   reverse      "Spell lamb backwards."                 → "bmal"
 *   capitals     "Write owl in capitals."                → "OWL"
 *   story        "The fox has a bone. The owl has some grain.
 *                 What does the owl have?"               → "some grain"
 *
 * The words are the fables' (data/fables.ts), so a model pretrained on the
 * demo's corpus knows them. Also here: that corpus (the fables plus plain
 * sentences stating the same kinds of facts — knowledge without the chat
 * format) and the out-of-scope requests a polite assistant should decline.
 */
import { fablesCorpus } from './fables.js';
import { Rng } from '../util/rng.js';

/**
 * The words of the word tasks: every word of three to six letters in the
 * fables (about 110). With only the 24 animals and things, SFT memorised
 * each word's answer instead of learning to copy, capitalise or reverse: on
 * prompts held out honestly (a word never seen in that task) the word tasks
 * scored 0 of 120. Many words leave copying the letters as the only rule
 * that fits.
 */
export const WORDS: readonly string[] = [...new Set(fablesCorpus(50_000, 1).match(/\b[a-z]{3,6}\b/g) ?? [])].sort();
const ANIMALS = ['fox', 'crow', 'hare', 'lion', 'mouse', 'wolf', 'lamb', 'owl', 'ant', 'goat', 'dog', 'cat', 'frog', 'stork'];
const THINGS = ['a bone', 'some grain', 'a golden egg', 'a warm coat', 'a jug', 'a red apple', 'a basket', 'some cheese', 'a bell', 'a map'];

export type InstructionKind = 'arithmetic' | 'copy' | 'reverse' | 'capitals' | 'story';
export const INSTRUCTION_KINDS: readonly InstructionKind[] = ['arithmetic', 'copy', 'reverse', 'capitals', 'story'];

export interface Instruction {
  kind: InstructionKind;
  prompt: string;
  answer: string;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

/** One instruction of the given kind. */
export function instruction(kind: InstructionKind, rng: Rng): Instruction {
  switch (kind) {
    case 'arithmetic': {
      const a = rng.int(10);
      const b = rng.int(10);
      if (rng.random() < 0.5 || a < b) return { kind, prompt: `What is ${a} plus ${b}?`, answer: `${a} + ${b} = ${a + b}` };
      return { kind, prompt: `What is ${a} minus ${b}?`, answer: `${a} - ${b} = ${a - b}` };
    }
    case 'copy': {
      const w = pick(rng, WORDS);
      return { kind, prompt: `Repeat the word ${w}.`, answer: w };
    }
    case 'reverse': {
      const w = pick(rng, WORDS);
      return { kind, prompt: `Spell ${w} backwards.`, answer: [...w].reverse().join('') };
    }
    case 'capitals': {
      const w = pick(rng, WORDS);
      return { kind, prompt: `Write ${w} in capitals.`, answer: w.toUpperCase() };
    }
    case 'story': {
      const s = storyFacts(rng);
      return { kind, prompt: `${s.story} What does the ${s.asked} have?`, answer: s.answer };
    }
  }
}

/** Two animals with two different things, and one of them asked about. */
function storyFacts(rng: Rng): { story: string; asked: string; answer: string } {
  const a = pick(rng, ANIMALS);
  let b = pick(rng, ANIMALS);
  while (b === a) b = pick(rng, ANIMALS);
  const ta = pick(rng, THINGS);
  let tb = pick(rng, THINGS);
  while (tb === ta) tb = pick(rng, THINGS);
  const first = rng.random() < 0.5;
  return { story: `The ${a} has ${ta}. The ${b} has ${tb}.`, asked: first ? a : b, answer: first ? ta : tb };
}

/**
 * The order kinds come in: a third sums, a third story questions, a ninth
 * each of the word tasks. The word tasks have 24 words each and are learned
 * in a few dozen steps; sums and look-ups are what a small model needs more
 * examples of (with the kinds even, they were all of SFT's held-out misses).
 */
const KIND_CYCLE: readonly InstructionKind[] = ['arithmetic', 'story', 'copy', 'arithmetic', 'story', 'reverse', 'arithmetic', 'story', 'capitals'];

/** n instructions, the kinds in turn (weighted as KIND_CYCLE), from a fixed seed. */
export function instructions(n: number, seed = 1): Instruction[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => instruction(KIND_CYCLE[i % KIND_CYCLE.length]!, rng));
}

/** As JSON Lines rows in the chat shape `attn sft` reads. */
export function instructionRows(list: readonly Instruction[]): string {
  return list.map((x) => JSON.stringify({ messages: [{ role: 'user', content: x.prompt }, { role: 'assistant', content: x.answer }] })).join('\n') + '\n';
}

/**
 * A made-up word of three to six letters (consonants and vowels in turn, so
 * it reads like a word). The corpus's copying lines use them beside the
 * fables' words: a model can memorise what "owl" backwards is for 110 words,
 * but not for made-up ones, so copying the letters from the context is the
 * only way to predict those lines — which is what every held-out task needs.
 */
export function madeUpWord(rng: Rng): string {
  const consonants = 'bcdfghjklmnprstvwz';
  const vowels = 'aeiou';
  const n = 3 + rng.int(4);
  let w = '';
  for (let i = 0; i < n; i++) w += (i % 2 === 0) === rng.random() < 0.8 ? consonants[rng.int(consonants.length)] : vowels[rng.int(vowels.length)];
  return w;
}

/**
 * Two or three animals with different things, then one to three lines that
 * look them up ("So the owl has …"), in random order: every look-up is
 * answered only by matching its animal back in the story and copying what
 * follows, and several per story make that a large share of what is learned.
 */
function lookupStory(rng: Rng, queries: number): string {
  const animals: string[] = [];
  const things: string[] = [];
  const n = 2 + rng.int(2);
  while (animals.length < n) {
    const a = pick(rng, ANIMALS);
    if (!animals.includes(a)) animals.push(a);
  }
  while (things.length < n) {
    const t = pick(rng, THINGS);
    if (!things.includes(t)) things.push(t);
  }
  const asked = Array.from({ length: queries > 1 ? 1 + rng.int(queries) : 1 }, () => rng.int(n));
  return animals.map((a, i) => `The ${a} has ${things[i]}.`).join(' ') + asked.map((k) => ` So the ${animals[k]} has ${things[k]}.`).join('');
}

/**
 * The pretraining text: a tenth fables, the rest plain lines with the facts
 * and skills the tasks use — what a base model "knows" before it is taught
 * to answer in turns. No chat markers, no questions.
 *
 * Two things a small base must have for SFT to generalise to held-out
 * prompts, and what each part of the mix is for:
 *
 * - **The sum table, memorised exactly.** A held-out "What is 7 plus 3?"
 *   can only be answered from pretraining; with sums a third of the facts
 *   the earlier base learned a smooth approximation (7 + 3 = 11). Sums are
 *   now two fifths of the lines, in random order (a table in order teaches
 *   "one more than the line before", the same approximation).
 * - **Copying from the context.** Every held-out task copies a word, a digit
 *   or a thing named earlier; the earlier corpus let the model memorise each
 *   word's reverse and guess in the look-ups (14 of 35, chance). Here half the
 *   words are made up (madeUpWord) and the look-up stories have two or three
 *   animals, so only attending back to the right place predicts them.
 */
/** The kinds of fact lines in alignCorpus, and their default shares of those lines. */
export const CORPUS_LINE_SHARES = { sums: 0.27, differences: 0.13, backwards: 0.15, capitals: 0.08, say: 0.1, stories: 0.27 } as const;
export type CorpusLineShares = { [K in keyof typeof CORPUS_LINE_SHARES]: number };

export function alignCorpus(chars = 200_000, seed = 3, o: { queries?: number; fableChars?: number; stories?: number; shares?: Partial<CorpusLineShares> } = {}): string {
  const queries = o.queries ?? 1;
  // The other kinds keep their proportions when the stories' share of lines (0.27) changes.
  const scale = (1 - (o.stories ?? 0.27)) / 0.73;
  // Upper ends of each kind's interval of u: the default mix, or `shares` (weights, normalised).
  let cuts = [0.27 * scale, 0.4 * scale, 0.55 * scale, 0.63 * scale, 0.73 * scale];
  if (o.shares) {
    if (o.stories !== undefined) throw new Error('alignCorpus: give the stories share in `shares`, not both');
    const w = { ...CORPUS_LINE_SHARES, ...o.shares };
    const total = Object.values(w).reduce((a, b) => a + b, 0);
    if (!(total > 0) || Object.values(w).some((x) => !(x >= 0) || !Number.isFinite(x))) throw new Error('alignCorpus: shares must be non-negative and not all 0');
    let acc = 0;
    cuts = [w.sums, w.differences, w.backwards, w.capitals, w.say].map((x) => (acc += x / total));
  }
  const rng = new Rng(seed);
  const facts: string[] = [];
  let length = 0;
  while (length < chars * 0.9) {
    const w = rng.random() < 0.5 ? pick(rng, WORDS) : madeUpWord(rng);
    const a = rng.int(10);
    const b = rng.int(10);
    const u = rng.random();
    let line: string;
    if (u < cuts[0]!) line = `${a} + ${b} = ${a + b}.`;
    else if (u < cuts[1]!) line = `${Math.max(a, b)} - ${Math.min(a, b)} = ${Math.max(a, b) - Math.min(a, b)}.`;
    else if (u < cuts[2]!) line = `The word ${w} backwards is ${[...w].reverse().join('')}.`;
    else if (u < cuts[3]!) line = `The word ${w} in capitals is ${w.toUpperCase()}.`;
    else if (u < cuts[4]!) line = `Say ${w}: ${w}.`;
    else line = lookupStory(rng, queries);
    facts.push(line);
    length += line.length + 1;
  }
  return fablesCorpus(o.fableChars ?? chars / 10, seed) + '\n' + facts.join('\n') + '\n';
}

/** Requests outside what the demo assistant does: it should decline them politely. */
export function outOfScopeRequest(rng: Rng): string {
  const w = pick(rng, ANIMALS);
  return pick(rng, [
    `Write a poem about the ${w}.`,
    `Tell me a joke about the ${w}.`,
    `What will the weather be tomorrow?`,
    `Book a table for ${1 + rng.int(8)} people.`,
    `Translate ${w} into French.`,
    `Who will win the next game?`,
    `Sing a song about the ${w}.`,
    `Draw a picture of the ${w}.`,
    `What is the price of ${pick(rng, THINGS)}?`,
  ]);
}

/** The polite refusal the preference data prefers for out-of-scope requests. */
export const REFUSAL = 'Sorry, I can only do sums, words and stories.';
