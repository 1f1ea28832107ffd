import { Tensor, type Shape } from '../tensor/tensor.js';

/** A Tensor that a model learns: it always needs a gradient. */
export class Parameter extends Tensor {
  constructor(data: Float32Array, shape: Shape) {
    super(data, shape, true);
  }
}

/**
 * Base class of every layer. Parameters and sub-modules are found from the
 * object's own fields, so `this.c_fc = new Linear(…)` is all a layer writes;
 * names come out as dotted paths ("h.0.mlp.c_fc.weight"), as in PyTorch.
 */
export abstract class Module {
  training = true;

  /** Every parameter with its dotted name, in definition order. */
  namedParameters(prefix = ''): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = [];
    for (const [key, value] of Object.entries(this)) {
      const name = prefix + key;
      if (value instanceof Parameter) out.push([name, value]);
      else if (value instanceof Module) out.push(...value.namedParameters(name + '.'));
      else if (Array.isArray(value)) {
        value.forEach((m, i) => {
          if (m instanceof Module) out.push(...m.namedParameters(`${name}.${i}.`));
        });
      }
    }
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  children(): Module[] {
    const out: Module[] = [];
    for (const value of Object.values(this)) {
      if (value instanceof Module) out.push(value);
      else if (Array.isArray(value)) out.push(...value.filter((m): m is Module => m instanceof Module));
    }
    return out;
  }

  /** Training mode turns dropout on; evaluation mode turns it off. */
  train(mode = true): this {
    this.training = mode;
    for (const c of this.children()) c.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }
}
