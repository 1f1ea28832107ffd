/**
 * Sentences and paragraphs of a text, with their character offsets, for
 * chunking (rag/chunker.ts) and the inverse cloze task (inverse_cloze.ts).
 * A sentence ends at . ! or ? (and any closing quotes or brackets) followed
 * by white space; a paragraph ends at a blank line. Good enough for prose;
 * an abbreviation such as "e.g." only makes one sentence two.
 */

export interface Span {
  start: number;
  end: number;
}

export interface Sentence extends Span {
  /** Index of the paragraph the sentence belongs to. */
  paragraph: number;
}

/** Paragraphs: runs of text separated by blank lines, trimmed, empty ones dropped. */
export function paragraphs(text: string): Span[] {
  const out: Span[] = [];
  const re = /\n[ \t]*\n\s*/g;
  let at = 0;
  for (;;) {
    const m = re.exec(text);
    const end = m ? m.index : text.length;
    const span = trimSpan(text, at, end);
    if (span) out.push(span);
    if (!m) break;
    at = m.index + m[0].length;
  }
  return out;
}

/** Sentences of every paragraph, in order, trimmed. */
export function sentences(text: string): Sentence[] {
  const out: Sentence[] = [];
  paragraphs(text).forEach((p, paragraph) => {
    const re = /[.!?]+["')\]]*(?=\s)/g;
    re.lastIndex = p.start;
    let at = p.start;
    for (;;) {
      const m = re.exec(text);
      if (!m || m.index >= p.end) break;
      const end = m.index + m[0].length;
      const span = trimSpan(text, at, end);
      if (span) out.push({ ...span, paragraph });
      at = end;
    }
    const last = trimSpan(text, at, p.end);
    if (last) out.push({ ...last, paragraph });
  });
  return out;
}

function trimSpan(text: string, start: number, end: number): Span | null {
  while (start < end && /\s/.test(text[start]!)) start++;
  while (end > start && /\s/.test(text[end - 1]!)) end--;
  return end > start ? { start, end } : null;
}
