import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';

/**
 * A corpus with known answers, for measuring retrieval offline: documents
 * about generated towns (invented names, so no model has seen them) and
 * questions about their facts. The questions use other words than the
 * documents ("settled" for "founded", "waterway" for "river"), and half of
 * them name the town not by its name but by two of its other facts ("the
 * glassmaking town on the Ostra"), so neither exact keywords nor the name
 * alone are enough. Each document also names another town (its twin), a
 * distractor for keyword search. Deterministic for a seed.
 */

export interface FactDocument {
  /** File name, e.g. "velmora.md". */
  file: string;
  text: string;
}

export interface FactQuestion {
  query: string;
  /** The file that answers it. */
  file: string;
  answer: string;
}

interface Town {
  name: string;
  founded: number;
  river: string;
  industry: string;
  mayor: string;
  dish: string;
  population: number;
  twin: number;
  region: string;
}

const ONSETS = ['b', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z', 'br', 'dr', 'kr', 'st', 'th', 'gl'];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'ai', 'ou', 'ei'];
const CODAS = ['', 'n', 'r', 'l', 's', 'th', 'm', 'nd'];
const INDUSTRIES = ['glassmaking', 'weaving', 'salt mining', 'shipbuilding', 'clockmaking', 'brewing', 'paper milling', 'copper smelting', 'cheese making', 'rope making', 'pottery', 'printing'];
const DISHES = ['smoked eel pie', 'barley soup', 'honey cakes', 'roast goose', 'pickled herring', 'plum dumplings', 'lentil stew', 'mushroom pasties', 'almond bread', 'fried trout'];
const REGIONS = ['northern hills', 'eastern marshes', 'southern plains', 'western coast', 'central valley', 'high plateau'];

function word(rng: Rng, syllables: number): string {
  let w = '';
  for (let i = 0; i < syllables; i++) w += ONSETS[rng.int(ONSETS.length)]! + VOWELS[rng.int(VOWELS.length)]!;
  w += CODAS[rng.int(CODAS.length)]!;
  return w[0]!.toUpperCase() + w.slice(1);
}

function uniqueWords(rng: Rng, n: number, syllables: number, taken: Set<string>): string[] {
  const out: string[] = [];
  while (out.length < n) {
    const w = word(rng, syllables);
    if (taken.has(w)) continue;
    taken.add(w);
    out.push(w);
  }
  return out;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

function towns(count: number, rng: Rng): Town[] {
  const taken = new Set<string>();
  const names = uniqueWords(rng, count, 3, taken);
  const rivers = uniqueWords(rng, Math.max(4, Math.ceil(count / 3)), 2, taken);
  const first = uniqueWords(rng, Math.max(8, Math.ceil(count / 2)), 2, taken);
  const last = uniqueWords(rng, count, 2, taken);
  return names.map((name, i) => ({
    name,
    founded: 1100 + rng.int(850),
    river: pick(rng, rivers),
    industry: pick(rng, INDUSTRIES),
    mayor: `${pick(rng, first)} ${last[i]!}`,
    dish: pick(rng, DISHES),
    population: 800 + rng.int(90_000),
    twin: (i + 1 + rng.int(count - 1)) % count,
    region: pick(rng, REGIONS),
  }));
}

/** Each fact has several phrasings; a document takes one of each at random. */
function document(t: Town, all: readonly Town[], rng: Rng): string {
  const twin = all[t.twin]!.name;
  const history = [
    pick(rng, [`${t.name} was founded in ${t.founded}.`, `The town of ${t.name} dates from ${t.founded}, when it was founded.`, `${t.name} has existed since its founding in ${t.founded}.`]),
    pick(rng, [`It lies on the river ${t.river}, in the ${t.region}.`, `The river ${t.river} flows through the town, which sits in the ${t.region}.`, `${t.name} was built beside the river ${t.river} in the ${t.region}.`]),
    pick(rng, ['Its old bridge still carries carts.', 'A market square lies at its centre.', 'Its walls were pulled down long ago.', 'A clock tower stands by the town hall.']),
  ];
  const economy = [
    pick(rng, [`Most of its people work in ${t.industry}.`, `The town lives from ${t.industry}.`, `${t.industry[0]!.toUpperCase() + t.industry.slice(1)} has long been the main industry of ${t.name}.`]),
    pick(rng, [`About ${t.population} people live there.`, `Its population is about ${t.population}.`, `${t.name} has some ${t.population} inhabitants.`]),
  ];
  const people = [
    pick(rng, [`The mayor is ${t.mayor}.`, `${t.mayor} is the mayor of ${t.name}.`, `The town council is led by its mayor, ${t.mayor}.`]),
    pick(rng, [`Visitors come for its ${t.dish}.`, `The local speciality is ${t.dish}.`, `${t.name} is famous for ${t.dish}.`]),
    pick(rng, [`It is twinned with ${twin}.`, `${t.name} has been twinned with ${twin} for many years.`, `Its twin town is ${twin}.`]),
  ];
  return `# ${t.name}\n\n${history.join(' ')}\n\n${economy.join(' ')}\n\n${people.join(' ')}\n`;
}

/** How a question refers to the town: its name, or (other words) two of its facts. */
function reference(t: Town, avoid: string, rng: Rng): string {
  if (rng.random() < 0.5) return t.name;
  const clues: Array<[string, string]> = [
    ['river', `the town on the ${t.river}`],
    ['industry', `the ${t.industry} town`],
    ['mayor', `the town whose mayor is ${t.mayor}`],
    ['dish', `the town known for ${t.dish}`],
  ];
  const usable = clues.filter(([f]) => f !== avoid);
  const a = usable.splice(rng.int(usable.length), 1)[0]![1];
  const b = usable[rng.int(usable.length)]![1].replace(/^the town /, '').replace(/^the (.*) town$/, 'in $1');
  return `${a} ${b.startsWith('in ') || b.startsWith('on ') || b.startsWith('known') || b.startsWith('whose') ? b : `that is ${b}`}`;
}

function question(t: Town, fact: string, rng: Rng): FactQuestion {
  const ref = reference(t, fact, rng);
  const file = `${t.name.toLowerCase()}.md`;
  switch (fact) {
    case 'founded':
      return { query: pick(rng, [`In what year was ${ref} first settled?`, `When was ${ref} established?`, `How old is ${ref}; when did it begin?`]), file, answer: String(t.founded) };
    case 'river':
      return { query: pick(rng, [`Which waterway runs past ${ref}?`, `What stream passes by ${ref}?`]), file, answer: t.river };
    case 'industry':
      return { query: pick(rng, [`What trade employs the residents of ${ref}?`, `What do the workers of ${ref} produce for a living?`]), file, answer: t.industry };
    case 'mayor':
      return { query: pick(rng, [`Who governs ${ref}?`, `Who heads the local government of ${ref}?`]), file, answer: t.mayor };
    case 'dish':
      return { query: pick(rng, [`What food should a traveller try in ${ref}?`, `Which meal is ${ref} celebrated for?`]), file, answer: t.dish };
    default:
      return { query: pick(rng, [`How many residents does ${ref} have?`, `What is the head count of ${ref}?`]), file, answer: String(t.population) };
  }
}

/**
 * The documents and the questions; with `devQuestionsPerTown`, also a
 * development set: more questions about the same towns, each about a fact
 * no test question of that town asks, drawn from a generator of their own
 * (the test questions are the same with or without them). Settings such as
 * the fusion's are chosen on these, never on the test questions.
 */
export function factCorpus(o: { towns: number; questionsPerTown: number; seed: number; devQuestionsPerTown?: number }): { documents: FactDocument[]; questions: FactQuestion[]; dev: FactQuestion[] } {
  if (o.towns < 2) throw new UserError('the corpus needs at least 2 towns');
  const rng = new Rng(o.seed);
  const devRng = new Rng(o.seed + 7919);
  const all = towns(o.towns, rng);
  const documents = all.map((t) => ({ file: `${t.name.toLowerCase()}.md`, text: document(t, all, rng) }));
  const facts = ['founded', 'river', 'industry', 'mayor', 'dish', 'population'];
  const questions: FactQuestion[] = [];
  const dev: FactQuestion[] = [];
  for (const t of all) {
    const order = [...facts];
    for (let i = 0; i < Math.min(o.questionsPerTown, facts.length); i++) questions.push(question(t, order.splice(rng.int(order.length), 1)[0]!, rng));
    for (let i = 0; i < Math.min(o.devQuestionsPerTown ?? 0, order.length); i++) dev.push(question(t, order.splice(devRng.int(order.length), 1)[0]!, devRng));
  }
  return { documents, questions, dev };
}
