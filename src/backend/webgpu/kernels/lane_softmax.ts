/**
 * The WGSL both KV-cache attention kernels share (attention_cached.ts,
 * attention_paged.ts): a workgroup of LANES invocations attends one query to
 * its keys, each invocation keeping an online softmax — its running maximum
 * m, sum l and weighted values o — over the keys j ≡ lid (mod LANES). The
 * partial results are then merged through workgroup memory, each rescaled
 * to the common maximum; a query whose lanes saw no key outputs zeros.
 */

export const LANES = 32;

/** Declarations: the lowest f32 (the maximum before any key) and the workgroup arrays the merge reads. */
export const laneSoftmaxState = (D: number): string => /* wgsl */ `
const LOWEST: f32 = -0x1.fffffep+127f;
var<workgroup> Ms: array<f32, ${LANES}>;
var<workgroup> Ls: array<f32, ${LANES}>;
var<workgroup> Os: array<f32, ${LANES * D}>;`;

/**
 * The online update for score `s` (already scaled) of a key whose value
 * element e is `value(e)` — or `fresh.value(e)` where `fresh.when` holds (a
 * new position read from the call's own values): statements inside the key
 * loop, over the invocation's variables m, l and o.
 */
export const laneSoftmaxUpdate = (D: number, value: (e: string) => string, fresh?: { when: string; value: (e: string) => string }): string => {
  const accumulate = (v: (e: string) => string) => `for (var e = 0u; e < ${D}u; e++) { o[e] = o[e] * corr + w * ${v('e')}; }`;
  return /* wgsl */ `
    let mNew = max(m, s);
    let corr = exp(m - mNew);
    let w = exp(s - mNew);
    l = l * corr + w;
    ${fresh ? `if (${fresh.when}) {
      ${accumulate(fresh.value)}
    } else {
      ${accumulate(value)}
    }` : accumulate(value)}
    m = mNew;`;
};

/** After the key loop: merge the lanes' (m, l, o) and write the query's output at out[at + e]. */
export const laneSoftmaxMerge = (D: number, at: string): string => /* wgsl */ `
  Ms[lid] = m;
  Ls[lid] = l;
  for (var e = 0u; e < ${D}u; e++) { Os[lid * ${D}u + e] = o[e]; }
  workgroupBarrier();
  var M = LOWEST;
  for (var r = 0u; r < ${LANES}u; r++) { M = max(M, Ms[r]); }
  var L = 0.0;
  for (var r = 0u; r < ${LANES}u; r++) { if (Ls[r] > 0.0) { L += Ls[r] * exp(Ms[r] - M); } }
  for (var e = lid; e < ${D}u; e += ${LANES}u) {
    var acc = 0.0;
    for (var r = 0u; r < ${LANES}u; r++) { if (Ls[r] > 0.0) { acc += Os[r * ${D}u + e] * exp(Ms[r] - M); } }
    out[${at} + e] = select(0.0, acc / L, L > 0.0);
  }`;
