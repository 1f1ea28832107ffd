"""PyTorch twin of `attn bench --workloads lora`: one LoRA (or full fine-tuning) training step.

Usage: python3 torch_lora.py --threads N --mode lora|full [--steps K]
Prints one JSON line. The model is torch_reference.py's nanoGPT-shaped GPT at
config G (GPT-2 124M: 12 layers, 768 wide, vocab 50257, ctx 256, batch 4).
LoRA is written by hand (no peft): rank 8, alpha 16, on c_attn and c_fc,
every base weight frozen (requires_grad False), AdamW over the adapters only
— the same step attn times (forward, backward, clip, AdamW).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import CONFIGS, GPT  # noqa: E402


class LoRALinear(nn.Module):
    """y = base(x) + (alpha/r) * (x @ A.T) @ B.T, with A [r, in] Kaiming-uniform and B [out, r] zero (PEFT's init)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=5**0.5)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + ((x @ self.lora_A.t()) * self.scaling) @ self.lora_B.t()


def add_lora(model, r, alpha, targets):
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.h:
        for name in targets:
            setattr(block, name, LoRALinear(getattr(block, name), r, alpha))
    return [p for n, p in model.named_parameters() if "lora_" in n]


def step_time(mode, steps, r=8, alpha=16):
    c = CONFIGS["G"]
    torch.manual_seed(0)
    model = GPT(c)
    params = add_lora(model, r, alpha, ["c_attn", "c_fc"]) if mode == "lora" else list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    B, T = c["batch"], c["block_size"]
    x = torch.randint(c["vocab"], (B, T))
    y = torch.randint(c["vocab"], (B, T))
    times = []
    for i in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    return {"workload": "lora", "mode": mode, "config": "G", "r": r, "tokens_per_s": B * T / dt, "step_ms": dt * 1000, "trainable_params": sum(p.numel() for p in params)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mode", choices=["lora", "full"], default="lora")
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    row = step_time(a.mode, a.steps)
    row.update(impl="pytorch", threads=a.threads, torch=torch.__version__, max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
