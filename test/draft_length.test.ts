import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bestDraftLength, DraftLength } from '../src/generate/draft_length.js';

describe('adaptive draft length', () => {
  it('picks the k with the most expected tokens per unit of time', () => {
    // Brute force of the formula it maximises, (1 − α^(k+1)) / (1 − α) / (k·r + 1).
    for (const alpha of [0.2, 0.5, 0.8, 0.95]) {
      for (const r of [0.02, 0.1, 0.3, 1]) {
        const rate = (k: number) => (1 - alpha ** (k + 1)) / (1 - alpha) / (k * r + 1);
        const k = bestDraftLength(alpha, r, 8);
        for (let j = 1; j <= 8; j++) assert.ok(rate(k) >= rate(j), `α ${alpha}, r ${r}: k ${k} beats ${j}`);
      }
    }
    assert.equal(bestDraftLength(1, 0.1, 8), 8, 'a draft that is always right: as long as allowed');
    assert.equal(bestDraftLength(0.1, 0.5, 8), 1, 'a poor, costly draft: one token');
  });

  it('lengthens the draft while it is kept and shortens it when it is refused', () => {
    const d = new DraftLength(8, 2);
    for (let i = 0; i < 30; i++) {
      d.observeRow(d.next, d.next); // every draft kept
      d.observeTimes(d.next, 0.0001 * d.next, 0.001); // a draft step costs a tenth of a verifying pass
    }
    assert.equal(d.next, 8);
    assert.ok(d.acceptance > 0.95, `acceptance ${d.acceptance}`);
    for (let i = 0; i < 30; i++) {
      d.observeRow(d.next, 0); // the first draft refused every time
      d.observeTimes(d.next, 0.0001 * d.next, 0.001);
    }
    assert.equal(d.next, 1);
  });
});
