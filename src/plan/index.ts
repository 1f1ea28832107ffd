export { planModel, PLAN_FORMULAS, CHINCHILLA_TOKENS_PER_PARAM, type ModelPlan, type PlanConfig, type PlanOptions, type BlockParams } from './plan.js';
export { formatPlan, formatBytes, formatCount, formatFlops } from './format.js';
export { planLlama, formatLlamaPlan, LLAMA_PLAN_FORMULAS, type LlamaPlan, type LlamaPlanConfig } from './llama_plan.js';
