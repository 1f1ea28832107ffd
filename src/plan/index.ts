export { planModel, PLAN_FORMULAS, CHINCHILLA_TOKENS_PER_PARAM, type ModelPlan, type PlanConfig, type PlanOptions, type BlockParams } from './plan.js';
export { formatPlan, formatBytes, formatCount, formatFlops } from './format.js';
