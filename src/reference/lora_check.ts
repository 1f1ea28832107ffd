import { join } from 'node:path';
import { isConv1DWeight, transpose2d } from '../io/hf_gpt2.js';
import { loadModel } from '../io/model_dir.js';
import { loadAdapter, peftPrefix } from '../io/peft.js';
import { readSafetensors } from '../io/safetensors.js';
import { loraParameters, mergeLoRA, withoutLoRA } from '../nn/lora.js';
import { backward, noGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { dpoLoss, responseMask, sequenceLogProbs, type ResponseBatch } from '../train/dpo.js';
import { UserError } from '../util/errors.js';
import { compare, floats, groupAdder, toInt32, TOLERANCE, type GroupResult, type ReferenceReport } from './check.js';

/**
 * Check LoRA and DPO against PyTorch's numbers (shared/reference/README.md,
 * "gpt2-tiny-lora"): the base in `baseDir`, the PEFT adapter and
 * expected.safetensors in `loraDir`. Groups:
 *   lora-logits   logits of base + adapter                  1e-4 abs
 *   dpo-logps     the four sequence log-probabilities        1e-4 abs
 *   dpo-loss      the DPO loss                               1e-4 abs
 *   lora-grads    d loss / d every adapter tensor            1e-5 abs or 1e-3 rel
 *   merged        base weights with the adapter folded in    1e-5 abs or 1e-3 rel
 */
export function runLoRAReferenceCheck(baseDir: string, loraDir: string): ReferenceReport {
  const { model } = loadModel(baseDir);
  const expected = readSafetensors(join(loraDir, 'expected.safetensors')).tensors;
  const groups: GroupResult[] = [];
  const add = groupAdder(groups);
  loadAdapter(model, loraDir);
  model.train(); // as PyTorch computed the gradients; the adapter has no dropout

  const ids = toInt32(expected.get('input_ids'), 'input_ids');
  const [B, T] = expected.get('input_ids')!.shape as [number, number];
  const logits = noGrad(() => model.forward(ids, [B, T]).logits);
  add('lora-logits', 'lora.logits', compare(logits.data, floats(expected.get('lora.logits'), 'lora.logits'), TOLERANCE.logits, 0));

  // DPO: the policy is base + adapter; the reference is the base alone (the adapter switched off).
  const chosenEntry = expected.get('dpo.chosen');
  if (!chosenEntry) throw new UserError('expected.safetensors has no dpo.chosen');
  const shape = chosenEntry.shape as [number, number];
  const mask = responseMask(toInt32(expected.get('dpo.prompt_len'), 'dpo.prompt_len'), shape);
  const chosen: ResponseBatch = { ids: toInt32(chosenEntry, 'dpo.chosen'), shape, responseMask: mask };
  const rejected: ResponseBatch = { ids: toInt32(expected.get('dpo.rejected'), 'dpo.rejected'), shape, responseMask: mask };
  const [refChosen, refRejected] = withoutLoRA(model, () => noGrad(() => [sequenceLogProbs(model, chosen), sequenceLogProbs(model, rejected)]));
  const policyChosen = sequenceLogProbs(model, chosen);
  const policyRejected = sequenceLogProbs(model, rejected);
  const logps: Array<[string, Tensor]> = [
    ['dpo.policy_chosen_logps', policyChosen],
    ['dpo.policy_rejected_logps', policyRejected],
    ['dpo.ref_chosen_logps', refChosen!],
    ['dpo.ref_rejected_logps', refRejected!],
  ];
  for (const [name, t] of logps) add('dpo-logps', name, compare(t.data, floats(expected.get(name), name), TOLERANCE.loss, 0));
  const beta = floats(expected.get('dpo.beta'), 'dpo.beta')[0]!;
  const { loss } = dpoLoss(policyChosen, policyRejected, refChosen!, refRejected!, beta);
  add('dpo-loss', 'dpo.loss', compare(loss.data, floats(expected.get('dpo.loss'), 'dpo.loss'), TOLERANCE.loss, 0));

  backward(loss);
  const prefix = peftPrefix(model);
  const params = new Map(loraParameters(model));
  let checked = 0;
  for (const [key, t] of expected) {
    if (!key.startsWith('grad.')) continue;
    const name = key.slice('grad.'.length);
    const p = name.startsWith(prefix) ? params.get(name.slice(prefix.length)) : undefined;
    if (!p) throw new UserError(`expected.safetensors has ${key} but the adapter has no tensor ${name}`);
    add('lora-grads', name, compare(p.ensureGrad(), floats(t, key), TOLERANCE.gradAbs, TOLERANCE.gradRel));
    checked++;
  }
  if (checked !== params.size) throw new UserError(`expected.safetensors has gradients for ${checked} of the adapter's ${params.size} tensors`);

  // Merged weights, compared in the reference's Conv1D layout [in, out].
  mergeLoRA(model);
  const weights = new Map(model.namedParameters());
  for (const [key, t] of expected) {
    if (!key.startsWith('merged.')) continue;
    const name = key.slice('merged.'.length);
    const p = weights.get(name);
    if (!p) throw new UserError(`expected.safetensors has ${key} but the model has no parameter ${name}`);
    add('merged', name, compare(isConv1DWeight(name) ? transpose2d(p.data, p.shape[0]!, p.shape[1]!) : p.data, floats(t, key), TOLERANCE.gradAbs, TOLERANCE.gradRel));
  }
  return { groups, pass: groups.every((g) => g.pass) };
}
