import { backend } from '../backend/index.js';
import { packPanels } from '../backend/panels.js';
import { isHost } from '../backend/storage.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { applyEpilogue, type LinearEpilogue } from '../tensor/ops/linear.js';
import { linearPanels } from '../tensor/ops/linear_panels.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear } from './linear.js';
import type { Module } from './module.js';

/**
 * A Linear that also keeps its weight in column panels (backend/panels.ts) and
 * multiplies a few rows — up to PANEL_ROWS, outside training — with them: a
 * decode step's one row and a speculative verifier's k + 1 then read the
 * weights at the same cost. More rows (a prompt), a recorded graph, or a
 * backend without panels take the Linear's own product. The weight and bias
 * stay the Linear's (same names, same file); the panels are a copy made when
 * packed, so the model must not train afterwards (`packForDecoding` again
 * after changing weights). Memory: the weights twice.
 */
export class PanelLinear extends Linear {
  readonly panels: Float32Array;

  constructor(lin: Linear) {
    const [out, inF] = lin.weight.shape as [number, number];
    super(inF, out, { weight: lin.weight, bias: lin.bias });
    this.panels = packPanels(lin.weight.data, out, inF);
  }

  override forward(x: Tensor, then: LinearEpilogue = {}): Tensor {
    const K = this.weight.shape[1]!;
    if (x.size / K <= PANEL_ROWS && !isGradEnabled() && backend().linearPanels && isHost(x.storage)) {
      return applyEpilogue(linearPanels(x, this.panels, this.weight.shape as [number, number], this.bias), then);
    }
    return super.forward(x, then);
  }
}

/** Rows up to which PanelLinear uses its panels (native/src/panel.h's PANEL_MAX_M: one pass over them). */
export const PANEL_ROWS = 8;

/**
 * Every plain Linear of a model (found by walking its module tree) becomes a
 * PanelLinear, in place, for decoding: batch-1 steps and speculative verifying
 * passes. Returns how many were packed. Inference only (see PanelLinear).
 */
export function packForDecoding(model: Module): number {
  let n = 0;
  for (const [name, layer] of model.namedModules()) {
    if (layer.constructor !== Linear) continue;
    model.replaceModule(name, new PanelLinear(layer as Linear));
    n++;
  }
  return n;
}
