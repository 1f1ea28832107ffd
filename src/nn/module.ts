import { Tensor, type Shape } from '../tensor/tensor.js';

/** A Tensor that a model learns: it always needs a gradient. */
export class Parameter extends Tensor {
  constructor(data: Float32Array, shape: Shape) {
    super(data, shape, true);
  }

  /**
   * A parameter of the given shape with no values yet (nothing allocated):
   * for a model about to be loaded, whose loader assigns `data` to every
   * parameter, or replaces its layer (int8 weights never need an fp32 matrix).
   */
  static placeholder(shape: Shape): Parameter {
    const p = new Parameter(new Float32Array(0), [0]);
    (p as { shape: Shape }).shape = [...shape];
    return p;
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

  /** Every sub-module (this one first, named ""), with its dotted name: "h.0.attn.c_attn". */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix.replace(/\.$/, ''), this]];
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Module) out.push(...value.namedModules(`${prefix}${key}.`));
      else if (Array.isArray(value)) value.forEach((m, i) => m instanceof Module && out.push(...m.namedModules(`${prefix}${key}.${i}.`)));
    }
    return out;
  }

  /** Put `layer` where the sub-module named `path` ("h.0.mlp.c_fc") is: how quantization swaps layers. */
  replaceModule(path: string, layer: Module): void {
    const keys = path.split('.');
    let owner: Record<string, unknown> = this as unknown as Record<string, unknown>;
    for (const key of keys.slice(0, -1)) owner = owner[key] as Record<string, unknown>;
    const last = keys[keys.length - 1]!;
    if (!(owner?.[last] instanceof Module)) throw new Error(`no sub-module ${path}`);
    owner[last] = layer;
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
