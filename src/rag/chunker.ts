import { sentences, type Span } from '../data/sentences.js';
import type { Chunk } from './store.js';

/**
 * Token-aware chunking. A document is cut into passages of at most
 * `maxTokens` tokens of the embedder's tokenizer, built from whole sentences,
 * preferring to end at a paragraph's end; when a paragraph is cut in the
 * middle, the next chunk repeats its last sentences (up to `overlapTokens`),
 * so a fact that spans the cut is whole in one of the two chunks. Each chunk
 * keeps its character offsets in the text, so an answer can cite them.
 */

export interface ChunkOptions {
  maxTokens: number;
  overlapTokens: number;
}

interface Unit extends Span {
  paragraph: number;
  tokens: number;
}

/** Sentences as units; a sentence longer than a chunk is cut at word boundaries. */
function units(text: string, count: (s: string) => number, max: number): Unit[] {
  const out: Unit[] = [];
  let prevEnd = 0;
  for (const s of sentences(text)) {
    // Counted with the white space before it: some tokenizers (the word one) make tokens of it, and
    // the chunk's text includes it, so the sum of its units' counts does not undercount the chunk.
    const tokens = count(text.slice(out.length === 0 ? s.start : prevEnd, s.end));
    prevEnd = s.end;
    if (tokens <= max) {
      out.push({ ...s, tokens });
      continue;
    }
    // Word pieces, each as long as fits.
    const words = [...text.slice(s.start, s.end).matchAll(/\S+/g)].map((m) => ({ start: s.start + m.index, end: s.start + m.index + m[0].length }));
    let piece: Unit | null = null;
    for (const w of words) {
      const t = count(text.slice(w.start, w.end));
      if (piece && piece.tokens + t <= max) {
        piece.end = w.end;
        piece.tokens += t;
        continue;
      }
      if (piece) out.push(piece);
      piece = { start: w.start, end: w.end, paragraph: s.paragraph, tokens: Math.min(t, max) };
    }
    if (piece) out.push(piece);
  }
  return out;
}

export type ChunkSpan = Omit<Chunk, 'id' | 'source'>;

export function chunkText(text: string, count: (s: string) => number, o: ChunkOptions): ChunkSpan[] {
  if (!(o.maxTokens >= 1)) throw new Error(`maxTokens must be ≥ 1 (got ${o.maxTokens})`);
  const all = units(text, count, o.maxTokens);
  const chunks: ChunkSpan[] = [];
  const emit = (us: Unit[]) => {
    const start = us[0]!.start;
    const end = us[us.length - 1]!.end;
    const body = text.slice(start, end);
    chunks.push({ ordinal: chunks.length, start, end, text: body, tokens: count(body) });
  };
  let cur: Unit[] = [];
  let curTokens = 0;
  for (const u of all) {
    const last = cur[cur.length - 1];
    const full = curTokens + u.tokens > o.maxTokens;
    const paragraphEnd = last !== undefined && u.paragraph !== last.paragraph && curTokens >= o.maxTokens / 2;
    if (last && (full || paragraphEnd)) {
      emit(cur);
      // Overlap only inside a paragraph that was cut: a new paragraph starts clean.
      let carry: Unit[] = [];
      let carried = 0;
      if (u.paragraph === last.paragraph) {
        for (let i = cur.length - 1; i > 0; i--) {
          const c = cur[i]!;
          if (c.paragraph !== u.paragraph || carried + c.tokens > o.overlapTokens || carried + c.tokens + u.tokens > o.maxTokens) break;
          carry = [c, ...carry];
          carried += c.tokens;
        }
      }
      cur = carry;
      curTokens = carried;
    }
    cur.push(u);
    curTokens += u.tokens;
  }
  if (cur.length > 0) emit(cur);
  return chunks;
}

/** Chunks of one file, with ids `${source}#${ordinal}`. */
export function chunkDocument(source: string, text: string, count: (s: string) => number, o: ChunkOptions): Chunk[] {
  return chunkText(text, count, o).map((c) => ({ id: `${source}#${c.ordinal}`, source, ...c }));
}
