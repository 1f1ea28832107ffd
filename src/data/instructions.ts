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
 * The pretraining text: a quarter fables, three quarters plain sentences with
 * the facts and skills the tasks use — what a base model "knows" before it is
 * taught to answer in turns. No chat markers, no questions.
 *
 * The mix is weighted toward what a small model finds hard: the sum table
 * (a hundred facts to memorise) and two-animal stories whose last sentence
 * repeats what one of them has ("… So the owl has a map."), which teaches
 * looking a name up earlier in the text. A base model trained on half fables
 * and an even mix knew 16 of the 100 sums and none of the look-ups, and SFT
 * could not teach them in its few steps: its held-out misses were exactly
 * sums and story questions.
 */
export function alignCorpus(chars = 200_000, seed = 3): string {
  const rng = new Rng(seed);
  const facts: string[] = [];
  let length = 0;
  while (length < chars * 0.75) {
    const w = pick(rng, WORDS);
    const a = rng.int(10);
    const b = rng.int(10);
    const u = rng.random();
    let line: string;
    if (u < 0.3) line = `${a} + ${b} = ${a + b}.`;
    else if (u < 0.45) line = `${Math.max(a, b)} - ${Math.min(a, b)} = ${Math.max(a, b) - Math.min(a, b)}.`;
    else if (u < 0.55) line = `The word ${w} backwards is ${[...w].reverse().join('')}.`;
    else if (u < 0.65) line = `The word ${w} in capitals is ${w.toUpperCase()}.`;
    else {
      const s = storyFacts(rng);
      line = `${s.story} So the ${s.asked} has ${s.answer}.`;
    }
    facts.push(line);
    length += line.length + 1;
  }
  return fablesCorpus(chars / 4, seed) + '\n' + facts.join('\n') + '\n';
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
