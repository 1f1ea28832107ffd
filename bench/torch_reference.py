"""PyTorch reference for `attn bench`: the same workloads, timed the same way.

Usage: python3 torch_reference.py --threads N --workloads train:S,train:M,gemm:768 [--steps K]
Prints one JSON line per workload. The GPT here is a minimal nanoGPT-shaped
model (pre-norm blocks, tied head, GELU tanh, causal attention via
scaled_dot_product_attention when available), trained with AdamW exactly as
attn's default recipe, so tokens/s are comparable step for step.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    "S": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch=12, vocab=65),
    "M": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch=16, vocab=65),
    "G": dict(n_layer=12, n_head=12, n_embd=768, block_size=256, batch=4, vocab=50257),
}


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["n_embd"]
        self.n_head = c["n_head"]
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def attn(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            y = att @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab"], c["n_embd"])
        self.wpe = nn.Embedding(c["block_size"], c["n_embd"])
        self.h = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"])

    def forward(self, idx, targets):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def train(name, steps):
    c = CONFIGS[name]
    torch.manual_seed(0)
    model = GPT(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    B, T = c["batch"], c["block_size"]
    x = torch.randint(c["vocab"], (B, T))
    y = torch.randint(c["vocab"], (B, T))
    times = []
    for i in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    return {"workload": "train", "config": name, "tokens_per_s": B * T / dt, "step_ms": dt * 1000}


def gemm(n, reps):
    import numpy as np

    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return {"workload": "gemm", "n": n, "gflops": 2 * n**3 / statistics.median(times) / 1e9}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workloads", default="train:S")
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for w in a.workloads.split(","):
        kind, arg = w.split(":")
        row = train(arg, a.steps) if kind == "train" else gemm(int(arg), max(3, a.steps))
        row.update(impl="pytorch", threads=a.threads, torch=torch.__version__, max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
