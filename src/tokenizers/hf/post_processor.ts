import { UserError } from '../../util/errors.js';

type Json = Record<string, unknown>;

/** The special tokens encode adds around a text when asked to (Llama's <s> / <|begin_of_text|>). */
export interface Wrapping {
  prefix: number[];
  suffix: number[];
}

/**
 * The post-processor of a tokenizer.json: TemplateProcessing's "single"
 * template (special tokens around the sequence A), ByteLevel (adds nothing),
 * or a Sequence of them. Without one, tokenizer_config.json's add_bos_token /
 * add_eos_token say what to add (as transformers' slow tokenizers do).
 */
export function wrappingFrom(config: unknown, tokenizerConfig: Json, idOf: (token: string) => number | undefined, source: string): Wrapping {
  if (config === null || config === undefined) {
    const wrap: Wrapping = { prefix: [], suffix: [] };
    const named = (key: string): number | undefined => {
      const t = specialTokenName(tokenizerConfig[key]);
      return t === undefined ? undefined : idOf(t);
    };
    const bos = named('bos_token');
    const eos = named('eos_token');
    if (tokenizerConfig.add_bos_token === true && bos !== undefined) wrap.prefix.push(bos);
    if (tokenizerConfig.add_eos_token === true && eos !== undefined) wrap.suffix.push(eos);
    return wrap;
  }
  const c = config as Json;
  switch (c.type) {
    case 'ByteLevel':
      return { prefix: [], suffix: [] };
    case 'TemplateProcessing':
      return template(c, source);
    case 'Sequence': {
      if (!Array.isArray(c.processors)) throw new UserError(`${source}: post_processor Sequence needs "processors"`);
      const parts = c.processors.map((p) => wrappingFrom(p, tokenizerConfig, idOf, source));
      return { prefix: parts.flatMap((p) => p.prefix), suffix: parts.flatMap((p) => p.suffix) };
    }
    default:
      throw new UserError(`${source}: post_processor type ${JSON.stringify(c.type)} is not supported (supported: TemplateProcessing, ByteLevel, Sequence)`);
  }
}

function template(c: Json, source: string): Wrapping {
  const bad = (what: string): never => {
    throw new UserError(`${source}: post_processor TemplateProcessing: ${what}`);
  };
  if (!Array.isArray(c.single)) bad('"single" must be an array');
  const specials = (c.special_tokens ?? {}) as Record<string, Json>;
  const wrap: Wrapping = { prefix: [], suffix: [] };
  let seenSequence = false;
  for (const item of c.single as Json[]) {
    if (item && typeof item === 'object' && 'Sequence' in item) {
      seenSequence = true;
      continue;
    }
    const name = (item?.SpecialToken as Json | undefined)?.id;
    if (typeof name !== 'string') return bad('"single" items must be {"SpecialToken": …} or {"Sequence": …}');
    const ids = specials[name]?.ids;
    if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x))) return bad(`special token ${JSON.stringify(name)} has no ids`);
    (seenSequence ? wrap.suffix : wrap.prefix).push(...(ids as number[]));
  }
  return wrap;
}

/** tokenizer_config.json names special tokens as strings or as {"content": …} objects. */
export function specialTokenName(x: unknown): string | undefined {
  if (typeof x === 'string') return x;
  if (x && typeof x === 'object' && typeof (x as Json).content === 'string') return (x as Json).content as string;
  return undefined;
}
