import { Rng } from '../util/rng.js';

/**
 * A small built-in corpus, so the first run needs no download: short fables
 * written by a grammar with a fixed seed. It has real spelling, punctuation,
 * recurring names and a simple story structure — enough for a character
 * model to go from noise to readable sentences in a minute or two.
 * (Generated here, so there is no licence to worry about.)
 */
const ANIMALS = ['fox', 'crow', 'hare', 'tortoise', 'lion', 'mouse', 'wolf', 'lamb', 'owl', 'ant', 'grasshopper', 'goat', 'dog', 'cat', 'frog', 'stork'];
const ADJECTIVES = ['clever', 'hungry', 'proud', 'little', 'old', 'patient', 'foolish', 'quick', 'gentle', 'greedy', 'brave', 'tired', 'wise', 'young'];
const PLACES = ['the river', 'the old oak', 'the meadow', 'the farm', 'the hill', 'the well', 'the forest', 'the village', 'the garden', 'the road'];
const THINGS = ['a piece of cheese', 'a bunch of grapes', 'a bone', 'some grain', 'a golden egg', 'a jug of water', 'a basket of apples', 'a warm coat'];
const TIMES = ['One morning', 'Long ago', 'One summer day', 'Late one evening', 'In the middle of winter', 'Once upon a time', 'At the end of the harvest'];
const WANTS = ['wanted', 'longed for', 'went looking for', 'dreamed of', 'asked for'];
const SPEECH = ['said', 'cried', 'laughed', 'whispered', 'answered', 'shouted'];
const LINES = [
  'Slow and steady wins the race.',
  'Look before you leap.',
  'A friend in need is a friend indeed.',
  'Do not count your chickens before they hatch.',
  'Pride goes before a fall.',
  'Little by little does the trick.',
  'It is easy to despise what you cannot get.',
  'Work today and you will eat tomorrow.',
  'No act of kindness is ever wasted.',
  'Better safe than sorry.',
];

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}

const cap = (s: string): string => s[0]!.toUpperCase() + s.slice(1);

function fable(rng: Rng): string {
  const a = pick(rng, ANIMALS);
  let b = pick(rng, ANIMALS);
  while (b === a) b = pick(rng, ANIMALS);
  const adjA = pick(rng, ADJECTIVES);
  const adjB = pick(rng, ADJECTIVES);
  const place = pick(rng, PLACES);
  const thing = pick(rng, THINGS);
  const moral = pick(rng, LINES);
  const title = `THE ${a.toUpperCase()} AND THE ${b.toUpperCase()}`;
  const lines = [
    title,
    '',
    `${pick(rng, TIMES)}, a ${adjA} ${a} ${pick(rng, WANTS)} ${thing} near ${place}.`,
    `A ${adjB} ${b} saw this and came closer.`,
    `"Good day, ${a}," the ${b} ${pick(rng, SPEECH)}. "What are you doing by ${place}?"`,
    `"I am looking for ${thing}," ${pick(rng, SPEECH)} the ${a}, "and I will not stop until I find it."`,
    rng.random() < 0.5
      ? `The ${b} helped the ${a}, and together they found ${thing} before the sun went down.`
      : `The ${b} only laughed, and the ${a} went on alone, and at last it found ${thing} by ${place}.`,
    `${cap(moral)}`,
    '',
    '',
  ];
  return lines.join('\n');
}

/** About `chars` characters of fables (deterministic for a given seed). */
export function fablesCorpus(chars = 200_000, seed = 7): string {
  const rng = new Rng(seed);
  let text = '';
  while (text.length < chars) text += fable(rng);
  return text;
}
