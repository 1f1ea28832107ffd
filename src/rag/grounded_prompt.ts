import type { Retrieved } from './retriever.js';

/**
 * A grounded answer's prompt: the retrieved passages, numbered, then the
 * question — as many passages, best first, as fit the model's context once
 * the question and the answer's tokens are set aside. The sources returned
 * are exactly the passages that went in, so an answer can be traced to them.
 */

export interface Source {
  /** Number of the passage in the prompt ([1], [2], …). */
  n: number;
  id: string;
  source: string;
  start: number;
  end: number;
  score: number;
}

export interface GroundedPrompt {
  /** The passages block (what a chat request puts in a system message). */
  context: string;
  /** context + question + "Answer:", for a plain language model. */
  prompt: string;
  sources: Source[];
  tokens: number;
}

export const INSTRUCTION = 'Answer the question using only the numbered passages below. Cite the passages you use as [n].';

const passage = (n: number, r: Retrieved, text: string) => `[${n}] (${r.chunk.source}, characters ${r.chunk.start}-${r.chunk.end})\n${text}`;

/**
 * `budget`: tokens the whole prompt may take (context length − the answer's
 * tokens). A passage that does not fit whole is left out, not cut, except the
 * first: a grounded answer needs at least one, so it is cut to what fits.
 */
export function buildGroundedPrompt(question: string, results: readonly Retrieved[], count: (s: string) => number, budget: number): GroundedPrompt {
  const tail = `\n\nQuestion: ${question.trim()}\nAnswer:`;
  const blocks: string[] = [];
  const sources: Source[] = [];
  const assemble = (bs: readonly string[]) => `${INSTRUCTION}\n\n${bs.join('\n\n')}`;
  for (const r of results) {
    const block = passage(sources.length + 1, r, r.chunk.text);
    if (count(assemble([...blocks, block]) + tail) <= budget) {
      blocks.push(block);
      sources.push({ n: sources.length + 1, id: r.chunk.id, source: r.chunk.source, start: r.chunk.start, end: r.chunk.end, score: r.score });
    } else if (blocks.length === 0) {
      // Cut the best passage word by word until it fits (binary search on its length).
      const words = r.chunk.text.split(/\s+/);
      let lo = 0;
      let hi = words.length;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (count(assemble([passage(1, r, words.slice(0, mid).join(' '))]) + tail) <= budget) lo = mid;
        else hi = mid - 1;
      }
      if (lo === 0) break; // not even one word fits: answer without passages
      blocks.push(passage(1, r, words.slice(0, lo).join(' ')));
      sources.push({ n: 1, id: r.chunk.id, source: r.chunk.source, start: r.chunk.start, end: r.chunk.end, score: r.score });
    }
  }
  const context = blocks.length > 0 ? assemble(blocks) : '';
  const prompt = context ? context + tail : tail.trimStart();
  return { context, prompt, sources, tokens: count(prompt) };
}
