import { UserError } from '../util/errors.js';
import { BPETokenizer, type Merge } from './bpe.js';

/**
 * tiktoken stores a BPE as ranked byte strings (a `.tiktoken` file: one
 * "base64 rank" per line) with no merge list: encoding merges whichever
 * adjacent pair forms the lowest-ranked token. The merges are implied, so
 * recover them: the merge that makes token t (rank r) is what BPE gives for
 * t's bytes using only tokens ranked below r — exactly two parts.
 */
export function bpeFromRanks(ranked: ReadonlyArray<Uint8Array>, specialTokens: ReadonlyMap<string, number>, pattern: string, source = 'tiktoken ranks'): BPETokenizer {
  const key = (b: Uint8Array): string => String.fromCharCode(...b);
  const rankOf = new Map<string, number>();
  ranked.forEach((b, r) => rankOf.set(key(b), r));
  const byteIds = new Array<number>(256).fill(-1);
  const merges: Merge[] = [];
  ranked.forEach((bytes, r) => {
    if (bytes.length === 1) {
      byteIds[bytes[0]!] = r;
      return;
    }
    const parts = Array.from(bytes, (b) => String.fromCharCode(b));
    for (;;) {
      let best = r;
      let at = -1;
      for (let i = 0; i + 1 < parts.length; i++) {
        const rank = rankOf.get(parts[i]! + parts[i + 1]!);
        if (rank !== undefined && rank < best) {
          best = rank;
          at = i;
        }
      }
      if (at < 0) break;
      parts.splice(at, 2, parts[at]! + parts[at + 1]!);
    }
    if (parts.length !== 2) throw new UserError(`${source}: token of rank ${r} cannot be made by merging two lower-ranked tokens`);
    merges.push([rankOf.get(parts[0]!)!, rankOf.get(parts[1]!)!, r]);
  });
  const missing = byteIds.indexOf(-1);
  if (missing >= 0) throw new UserError(`${source}: byte ${missing} has no token`);
  return new BPETokenizer({ pattern, byteIds, merges, specialTokens }, source);
}

/** A `.tiktoken` file: lines of "base64-bytes rank", ranks 0, 1, 2, … */
export function parseTiktokenFile(text: string, source: string): Uint8Array[] {
  const ranked: Uint8Array[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const [b64, rank] = line.trim().split(' ');
    if (!b64 || Number(rank) !== ranked.length) throw new UserError(`${source}: line ${i + 1} should be "base64 ${ranked.length}"`);
    ranked.push(new Uint8Array(Buffer.from(b64, 'base64')));
  });
  return ranked;
}
