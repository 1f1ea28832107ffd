/**
 * Corpus BLEU-4 (Papineni et al. 2002), one reference per hypothesis: the
 * clipped 1- to 4-gram precisions over the whole corpus, their geometric
 * mean, times the brevity penalty exp(1 − r/c) when the hypotheses are
 * shorter in all than the references. Words are split on spaces. 0 … 1.
 */
export function bleu4(hypotheses: string[], references: string[]): number {
  if (hypotheses.length !== references.length) throw new Error(`bleu4: ${hypotheses.length} hypotheses but ${references.length} references`);
  const matched = [0, 0, 0, 0];
  const total = [0, 0, 0, 0];
  let hypLen = 0;
  let refLen = 0;
  hypotheses.forEach((h, i) => {
    const hw = h.split(' ').filter(Boolean);
    const rw = references[i]!.split(' ').filter(Boolean);
    hypLen += hw.length;
    refLen += rw.length;
    for (let n = 1; n <= 4; n++) {
      const refCounts = ngramCounts(rw, n);
      for (const [gram, count] of ngramCounts(hw, n)) {
        matched[n - 1]! += Math.min(count, refCounts.get(gram) ?? 0);
        total[n - 1]! += count;
      }
    }
  });
  if (matched.some((m) => m === 0)) return 0;
  const logPrecision = matched.reduce((s, m, i) => s + Math.log(m / total[i]!), 0) / 4;
  const brevity = hypLen >= refLen ? 1 : Math.exp(1 - refLen / Math.max(hypLen, 1));
  return brevity * Math.exp(logPrecision);
}

function ngramCounts(words: string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= words.length; i++) {
    const gram = words.slice(i, i + n).join(' ');
    counts.set(gram, (counts.get(gram) ?? 0) + 1);
  }
  return counts;
}
