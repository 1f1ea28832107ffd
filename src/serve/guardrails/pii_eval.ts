import { piiCorpus, type PiiSample } from '../../data/pii_corpus.js';
import { findPII, type PiiMatch } from './pii.js';

/**
 * How well the PII detector does on a generated corpus (data/pii_corpus.ts):
 * recall over the items planted (an item counts as found when a detection of
 * its kind covers all of it), and false alarms over the texts with none
 * (any detection there is one). `attn evals pii` prints this; the guardrails
 * test checks it on a smaller sample.
 */
export interface PiiScore {
  texts: number;
  planted: number;
  found: number;
  recall: number;
  negatives: number;
  falseAlarms: number;
  falseAlarmRate: number;
  /** Up to 10 of each, for a person to read. */
  misses: Array<{ text: string; kind: string; value: string }>;
  alarms: Array<{ text: string; detected: PiiMatch[] }>;
}

export function scorePII(samples: readonly PiiSample[], detect: (text: string) => PiiMatch[] = (t) => findPII(t)): PiiScore {
  let planted = 0;
  let found = 0;
  let negatives = 0;
  let falseAlarms = 0;
  const misses: PiiScore['misses'] = [];
  const alarms: PiiScore['alarms'] = [];
  for (const s of samples) {
    const detected = detect(s.text);
    if (s.planted.length === 0) {
      negatives++;
      if (detected.length > 0) {
        falseAlarms++;
        if (alarms.length < 10) alarms.push({ text: s.text, detected });
      }
      continue;
    }
    for (const p of s.planted) {
      planted++;
      const at = s.text.indexOf(p.value);
      if (detected.some((d) => d.kind === p.kind && d.start <= at && d.end >= at + p.value.length)) found++;
      else if (misses.length < 10) misses.push({ text: s.text, kind: p.kind, value: p.value });
    }
  }
  return {
    texts: samples.length,
    planted,
    found,
    recall: planted > 0 ? found / planted : 1,
    negatives,
    falseAlarms,
    falseAlarmRate: negatives > 0 ? falseAlarms / negatives : 0,
    misses,
    alarms,
  };
}

export function scoreGeneratedPII(n: number, seed = 1): PiiScore {
  return scorePII(piiCorpus(n, seed));
}
