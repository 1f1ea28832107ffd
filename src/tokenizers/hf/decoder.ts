import { UserError } from '../../util/errors.js';
import { UNICODE_TO_BYTE } from '../bytes.js';
import { patternRegex } from './pattern.js';

type Json = Record<string, unknown>;

/**
 * A decoder turns token strings back into text, step by step: each step maps
 * the list of strings to a new list (Fuse joins them into one), and the final
 * list is concatenated. `added` holds the added tokens' strings, which the
 * ByteLevel step passes through as they are.
 */
export type DecodeStep = (tokens: string[], added: ReadonlySet<string>) => string[];

/** One token's bytes in the middle of a text (for streaming), or null if this step cannot say. */
export type TokenBytesStep = (token: string | Uint8Array, added: boolean) => string | Uint8Array;

export interface Decoder {
  decode: DecodeStep;
  /** Per token, ignoring steps that depend on position (Strip, the first-token space of Metaspace). */
  tokenBytes: TokenBytesStep;
}

const utf8 = new TextEncoder();
const SUPPORTED = 'ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence';

/** The decoder a tokenizer.json describes; without one, tokens are joined as they are. */
export function decoderFrom(config: unknown, source: string): Decoder {
  if (config === null || config === undefined) return { decode: (t) => t, tokenBytes: (t) => t };
  const c = config as Json;
  switch (c.type) {
    case 'ByteLevel':
      return { decode: byteLevelDecode, tokenBytes: (t, added) => (typeof t === 'string' && !added ? stringToBytes(t) : t) };
    case 'Metaspace': {
      const replacement = typeof c.replacement === 'string' ? c.replacement : '▁';
      const firstSpace = c.prepend_scheme !== 'never' && c.add_prefix_space !== false;
      return {
        decode: (tokens) =>
          tokens.map((t, i) => {
            const s = t.replaceAll(replacement, ' ');
            return i === 0 && firstSpace && s.startsWith(' ') ? s.slice(1) : s;
          }),
        tokenBytes: (t) => (typeof t === 'string' ? t.replaceAll(replacement, ' ') : t),
      };
    }
    case 'Replace': {
      const re = patternRegex(c.pattern, 'decoder Replace', source);
      const content = String(c.content ?? '');
      const replace = (t: string): string => t.replace(re, () => content);
      return { decode: (tokens) => tokens.map(replace), tokenBytes: (t) => (typeof t === 'string' ? replace(t) : t) };
    }
    case 'ByteFallback':
      return { decode: byteFallbackDecode, tokenBytes: (t) => (typeof t === 'string' && byteToken(t) !== null ? Uint8Array.of(byteToken(t)!) : t) };
    case 'Fuse':
      return { decode: (tokens) => [tokens.join('')], tokenBytes: (t) => t };
    case 'Strip': {
      const content = String(c.content ?? ' ');
      const start = Number(c.start ?? 0);
      const stop = Number(c.stop ?? 0);
      return { decode: (tokens) => tokens.map((t) => strip(t, content, start, stop)), tokenBytes: (t) => t };
    }
    case 'Sequence': {
      if (!Array.isArray(c.decoders)) throw new UserError(`${source}: decoder Sequence needs "decoders"`);
      const steps = c.decoders.map((d) => decoderFrom(d, source));
      return {
        decode: (tokens, added) => steps.reduce((ts, s) => s.decode(ts, added), tokens),
        tokenBytes: (t, added) => steps.reduce((x, s) => s.tokenBytes(x, added), t),
      };
    }
    default:
      throw new UserError(`${source}: decoder type ${JSON.stringify(c.type)} is not supported (supported: ${SUPPORTED})`);
  }
}

/** Byte-level tokens spell bytes with stand-in characters (bytes.ts); runs of them are decoded as UTF-8. */
function byteLevelDecode(tokens: string[], added: ReadonlySet<string>): string[] {
  const out: string[] = [];
  let run: string[] = [];
  const flush = (): void => {
    if (run.length) out.push(new TextDecoder('utf-8', { ignoreBOM: true }).decode(stringToBytes(run.join(''))));
    run = [];
  };
  for (const t of tokens) {
    if (added.has(t)) {
      flush();
      out.push(t);
    } else run.push(t);
  }
  flush();
  return out;
}

function stringToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = UNICODE_TO_BYTE.get(s[i]!) ?? 0;
  return out;
}

/** `<0x41>` → 0x41; null for any other token. */
function byteToken(t: string): number | null {
  if (t.length !== 6 || !t.startsWith('<0x') || !t.endsWith('>')) return null;
  const b = parseInt(t.slice(3, 5), 16);
  return Number.isNaN(b) ? null : b;
}

/** SentencePiece's byte tokens: consecutive `<0xNN>` tokens are decoded together as UTF-8. */
function byteFallbackDecode(tokens: string[]): string[] {
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = (): void => {
    if (bytes.length) out.push(new TextDecoder().decode(Uint8Array.from(bytes)));
    bytes = [];
  };
  for (const t of tokens) {
    const b = byteToken(t);
    if (b !== null) bytes.push(b);
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
}

/** Remove up to `start` leading and `stop` trailing copies of `content`. */
function strip(t: string, content: string, start: number, stop: number): string {
  let a = 0;
  while (a < start && t[a] === content) a++;
  let b = t.length;
  while (t.length - b < stop && b > a && t[b - 1] === content) b--;
  return t.slice(a, b);
}

/** A token's bytes from tokenBytes' result. */
export const asBytes = (x: string | Uint8Array): Uint8Array => (typeof x === 'string' ? utf8.encode(x) : x);
