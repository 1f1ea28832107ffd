import { Rng } from '../util/rng.js';
import type { Pair } from './positive_pairs.js';

/**
 * Paraphrase pairs written by a small grammar: a meaning (who does what to
 * whom, where, when) is drawn, then said twice in different words — synonyms,
 * digits or number words, active or passive voice, the place or time moved.
 * Negatives in a batch differ in some slot, and some only in who did what to
 * whom ("the fox chases the dog" vs "the dog chases the fox"), so the
 * embedding must keep every slot and the word order that binds them.
 */

/** Surface forms of one slot value: any of them may be used. */
type Forms = readonly string[];

interface Noun {
  singular: Forms;
  plural: Forms;
}

interface Verb {
  /** [third-person singular, plural, past participle] per synonym. */
  forms: ReadonlyArray<readonly [string, string, string]>;
}

const COUNTS: readonly Forms[] = [
  ['a', 'one', '1'],
  ['two', '2', 'a pair of'],
  ['three', '3'],
  ['four', '4'],
  ['five', '5'],
  ['six', '6', 'half a dozen'],
];

const SIZES: readonly Forms[] = [[''], ['big', 'large'], ['small', 'little'], ['old', 'aged'], ['young', 'youthful'], ['quick', 'fast', 'swift'], ['lazy', 'idle'], ['hungry', 'starving']];

const COLOURS: readonly Forms[] = [
  ['red', 'crimson'], ['blue', 'azure'], ['grey', 'gray'], ['black', 'jet black'], ['white', 'snow white'],
  ['brown', 'chestnut'], ['green'], ['yellow', 'golden'], ['orange'], ['pink', 'rosy'],
];

const noun = (singular: Forms, plural: Forms): Noun => ({ singular, plural });
const ANIMALS: readonly Noun[] = [
  noun(['fox'], ['foxes']), noun(['dog', 'hound'], ['dogs', 'hounds']), noun(['cat', 'kitty'], ['cats', 'kitties']),
  noun(['wolf'], ['wolves']), noun(['mouse'], ['mice']), noun(['goose'], ['geese']), noun(['sheep'], ['sheep']),
  noun(['deer'], ['deer']), noun(['horse', 'steed'], ['horses', 'steeds']), noun(['rabbit', 'bunny'], ['rabbits', 'bunnies']),
  noun(['owl'], ['owls']), noun(['crow'], ['crows']), noun(['frog', 'toad'], ['frogs', 'toads']), noun(['bear'], ['bears']),
  noun(['goat'], ['goats']), noun(['pig', 'hog'], ['pigs', 'hogs']),
];

const VERBS: readonly Verb[] = [
  { forms: [['chases', 'chase', 'chased'], ['pursues', 'pursue', 'pursued']] },
  { forms: [['sees', 'see', 'seen'], ['spots', 'spot', 'spotted'], ['notices', 'notice', 'noticed']] },
  { forms: [['helps', 'help', 'helped'], ['assists', 'assist', 'assisted'], ['aids', 'aid', 'aided']] },
  { forms: [['follows', 'follow', 'followed'], ['trails', 'trail', 'trailed'], ['tracks', 'track', 'tracked']] },
  { forms: [['bites', 'bite', 'bitten'], ['nips', 'nip', 'nipped']] },
  { forms: [['greets', 'greet', 'greeted'], ['welcomes', 'welcome', 'welcomed']] },
  { forms: [['fears', 'fear', 'feared'], ['dreads', 'dread', 'dreaded']] },
  { forms: [['feeds', 'feed', 'fed'], ['nourishes', 'nourish', 'nourished']] },
  { forms: [['ignores', 'ignore', 'ignored'], ['disregards', 'disregard', 'disregarded']] },
  { forms: [['carries', 'carry', 'carried'], ['lifts', 'lift', 'lifted']] },
  { forms: [['teaches', 'teach', 'taught'], ['instructs', 'instruct', 'instructed']] },
  { forms: [['wakes', 'wake', 'woken'], ['rouses', 'rouse', 'roused']] },
];

const PLACES: readonly Forms[] = [
  ['near the river', 'by the river', 'beside the river'], ['in the forest', 'in the woods'], ['on the hill', 'atop the hill'],
  ['in the garden'], ['at the farm', 'on the farm'], ['under the bridge', 'beneath the bridge'], ['by the lake', 'near the lake', 'beside the lake'],
  ['in the meadow', 'in the field'], ['behind the barn'], ['on the road', 'along the road'],
];

const TIMES: readonly Forms[] = [[''], ['at dawn', 'at sunrise', 'early in the morning'], ['at noon', 'at midday'], ['in the evening', 'at dusk'], ['at night', 'after dark'], ['in winter', 'during the winter'], ['in summer', 'during the summer']];

/** A meaning: indices into the tables above. */
interface Meaning {
  count1: number; size1: number; colour1: number; animal1: number;
  verb: number;
  count2: number; size2: number; colour2: number; animal2: number;
  place: number; time: number;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

function drawMeaning(rng: Rng): Meaning {
  return {
    count1: rng.int(COUNTS.length), size1: rng.int(SIZES.length), colour1: rng.int(COLOURS.length), animal1: rng.int(ANIMALS.length),
    verb: rng.int(VERBS.length),
    count2: rng.int(COUNTS.length), size2: rng.int(SIZES.length), colour2: rng.int(COLOURS.length), animal2: rng.int(ANIMALS.length),
    place: rng.int(PLACES.length), time: rng.int(TIMES.length),
  };
}

const keyOf = (m: Meaning): string => Object.values(m).join('.');

/** "three big red foxes", "a gray wolf", "an orange owl". */
function nounPhrase(rng: Rng, count: number, size: number, colour: number, animal: number): string {
  const words = [pick(rng, SIZES[size]!), pick(rng, COLOURS[colour]!), pick(rng, count === 0 ? ANIMALS[animal]!.singular : ANIMALS[animal]!.plural)].filter((w) => w);
  let det = pick(rng, COUNTS[count]!);
  if (det === 'a' && /^[aeiou]/.test(words[0]!)) det = 'an';
  return [det, ...words].join(' ');
}

/** One way of saying a meaning. */
function realize(rng: Rng, m: Meaning): string {
  const subject = nounPhrase(rng, m.count1, m.size1, m.colour1, m.animal1);
  const object = nounPhrase(rng, m.count2, m.size2, m.colour2, m.animal2);
  const [singular, plural, participle] = pick(rng, VERBS[m.verb]!.forms);
  const place = pick(rng, PLACES[m.place]!);
  const time = pick(rng, TIMES[m.time]!);
  const active = `${subject} ${m.count1 === 0 ? singular : plural} ${object}`;
  const passive = `${object} ${m.count2 === 0 ? 'is' : 'are'} ${participle} by ${subject}`;
  const clause = rng.random() < 0.5 ? active : passive;
  const cleft = `it is ${subject} that ${m.count1 === 0 ? singular : plural} ${object}`;
  const core = rng.random() < 0.15 ? cleft : clause;
  const parts = pick(rng, [
    [time, core, place],
    [place, core, time],
    [core, place, time],
    [time, place, core],
  ]);
  return parts.filter((p) => p).join(' ');
}

type Slot = keyof Meaning;

/** How many values each slot can take. */
const SLOT_SIZES: Record<Slot, number> = {
  count1: COUNTS.length, size1: SIZES.length, colour1: COLOURS.length, animal1: ANIMALS.length,
  verb: VERBS.length,
  count2: COUNTS.length, size2: SIZES.length, colour2: COLOURS.length, animal2: ANIMALS.length,
  place: PLACES.length, time: TIMES.length,
};

/** Who does what to whom, reversed: the same words, the opposite meaning. */
function swapRoles(m: Meaning): Meaning {
  return { ...m, count1: m.count2, size1: m.size2, colour1: m.colour2, animal1: m.animal2, count2: m.count1, size2: m.size1, colour2: m.colour1, animal2: m.animal1 };
}

/** A near miss: one slot changed, or the roles swapped. */
function variant(rng: Rng, m: Meaning): Meaning {
  if (rng.random() < 0.25) return swapRoles(m);
  const slots = Object.keys(SLOT_SIZES) as Slot[];
  const slot = pick(rng, slots);
  return { ...m, [slot]: (m[slot] + 1 + rng.int(SLOT_SIZES[slot] - 1)) % SLOT_SIZES[slot] };
}

/** Two different sayings of one meaning, or null in the rare case only one exists. */
function paraphrase(rng: Rng, m: Meaning): [string, string] | null {
  const anchor = realize(rng, m);
  for (let tries = 0; tries < 10; tries++) {
    const positive = realize(rng, m);
    if (positive !== anchor) return [anchor, positive];
  }
  return null;
}

/**
 * `count` paraphrase pairs (deterministic for a seed), in groups of
 * `groupSize`: a meaning and near misses of it (one slot changed, or subject
 * and object swapped). Each pair is two different sayings of one meaning.
 */
export function templatePairs(count: number, seed = 1, groupSize = 4): Pair[] {
  const rng = new Rng(seed);
  const pairs: Pair[] = [];
  while (pairs.length < count) {
    const base = drawMeaning(rng);
    const group = keyOf(base);
    const seen = new Set<string>();
    for (let m = base, tries = 0; seen.size < groupSize && tries < groupSize * 4 && pairs.length < count; m = variant(rng, base), tries++) {
      const key = keyOf(m);
      const texts = seen.has(key) ? null : paraphrase(rng, m);
      if (!texts) continue;
      seen.add(key);
      pairs.push({ anchor: texts[0], positive: texts[1], key, group });
    }
  }
  return pairs;
}
