import { UserError } from '../util/errors.js';
import type { CausalLM } from '../models/causal_lm.js';
import { noGrad } from '../tensor/autograd.js';
import { distillationLoss } from '../tensor/ops/distillation.js';
import { add, scale } from '../tensor/ops/elementwise.js';
import { softmax } from '../tensor/ops/softmax.js';
import type { Batch } from './data.js';
import type { Objective } from './step.js';

/**
 * Distillation, the objective that trains a small model (the student) to
 * predict what a larger one (the teacher) predicts: at every position of B
 * windows of text, the teacher's whole next-token distribution is the target
 * (distillationLoss: KL(teacher ‖ student)), not only the token the text
 * continues with. The teacher runs in eval mode without a graph: it is read,
 * never trained.
 *
 * This is how `attn train --distill-from DIR` makes a draft model for
 * speculative decoding (generate/speculative.ts): the draft's tokens are kept
 * when the target agrees with them, so the draft should be trained to agree
 * with the target, mistakes included, rather than with the text.
 *
 * `textWeight` mixes in the ordinary cross-entropy against the text's next
 * token: loss = (1 − w)·KL + w·CE (0: pure distillation).
 */
export function distillationObjective(student: CausalLM, teacher: CausalLM, blockSize: number, textWeight = 0): Objective<Batch> {
  const [t, s] = [teacher.config.vocab_size, student.config.vocab_size];
  if (t !== s) throw new UserError(`distillation: the student scores ${s} tokens but the teacher ${t}; they need the same vocabulary`);
  if (!(textWeight >= 0 && textWeight <= 1)) throw new Error(`distillation: the text's weight must be in [0, 1], got ${textWeight}`);
  teacher.eval();
  return {
    loss: ({ x, y }) => {
      const shape: [number, number] = [x.length / blockSize, blockSize];
      const p = noGrad(() => Float32Array.from(softmax(teacher.forward(x, shape).logits).data));
      const { logits, loss: textLoss } = student.forward(x, shape, textWeight > 0 ? y : undefined, { keepLogits: true });
      const kl = distillationLoss(logits, p);
      return textLoss ? add(scale(kl, 1 - textWeight), scale(textLoss, textWeight)) : kl;
    },
  };
}
