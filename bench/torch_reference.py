"""PyTorch reference for `attn bench`: the same workloads, timed the same way.

Usage: python3 torch_reference.py --threads N --workloads train:S,train:M,gemm:768,skinny:16,decode:124M,prefill:124M [--steps K]
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
        bias = c.get("bias", True)
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)
        self.c_proj = nn.Linear(d, d, bias=bias)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d, bias=bias)
        self.mlp_proj = nn.Linear(4 * d, d, bias=bias)
        self.gelu = c.get("gelu", "tanh")  # "none" is the exact GELU (nanoGPT's)

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
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate=self.gelu))


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


# Inference shapes for decode/prefill: GPT-2 124M (random weights) and config S.
DECODE = {
    "124M": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab=50257),
    "S": CONFIGS["S"],
}


def cached_attn(block, x, kv):
    """Attention of the new positions x against the cache kv = [k, v] (each [B, H, past, D]), which it extends."""
    B, T, C = x.shape
    q, k, v = block.c_attn(x).split(C, dim=2)
    q, k, v = (t.view(B, T, block.n_head, C // block.n_head).transpose(1, 2) for t in (q, k, v))
    if kv[0] is not None:
        k = torch.cat([kv[0], k], dim=2)
        v = torch.cat([kv[1], v], dim=2)
    kv[0], kv[1] = k, v
    # A first pass (prefill) is causal; a single new token may see every cached position.
    if hasattr(F, "scaled_dot_product_attention"):
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
    else:  # torch < 2.0
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        if T > 1:
            S = k.size(2)
            mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
            att = att.masked_fill(~mask, float("-inf"))
        y = att.softmax(-1) @ v
    return block.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


@torch.inference_mode()
def cached_forward(model, idx, cache, past):
    """Run new tokens idx [B, T] at positions past…past+T−1; returns the next-token logits of the last one."""
    T = idx.size(1)
    x = model.wte(idx) + model.wpe(torch.arange(past, past + T, device=idx.device))
    for b, kv in zip(model.h, cache):
        x = x + cached_attn(b, b.ln_1(x), kv)
        x = x + b.mlp_proj(F.gelu(b.c_fc(b.ln_2(x)), approximate="tanh"))
    return model.ln_f(x[:, -1]) @ model.wte.weight.t()


def decode(name, steps, prompt=16):
    """Batch-1 greedy decoding with the KV cache after a 16-token prompt: median time per token."""
    c = DECODE[name]
    torch.manual_seed(0)
    model = GPT(c).eval()
    n = min(steps + 2, c["block_size"] - prompt)
    idx = torch.randint(c["vocab"], (1, prompt))
    times = []
    for timed in (False, False, False, True):  # untimed warm-up passes, as attn's benchmark does
        cache = [[None, None] for _ in model.h]
        nxt = cached_forward(model, idx, cache, 0).argmax(-1, keepdim=True)
        for i in range(n):
            t0 = time.perf_counter()
            nxt = cached_forward(model, nxt, cache, prompt + i).argmax(-1, keepdim=True)
            if timed and i >= 2:
                times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    return {"workload": "decode", "config": name, "dtype": "fp32", "tokens_per_s": 1 / dt, "step_ms": dt * 1000, "prompt": prompt}


def prefill(name, steps, T=256):
    """One T-token prompt into an empty cache: median time."""
    c = DECODE[name]
    torch.manual_seed(0)
    model = GPT(c).eval()
    idx = torch.randint(c["vocab"], (1, T))
    times = []
    for i in range(steps + 1):
        cache = [[None, None] for _ in model.h]
        t0 = time.perf_counter()
        cached_forward(model, idx, cache, 0)
        if i >= 1:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    return {"workload": "prefill", "config": name, "dtype": "fp32", "tokens_per_s": T / dt, "step_ms": dt * 1000, "prompt": T}


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


def skinny(rows, reps):
    """x @ W.T for rows × 768 against GPT-2 124M's c_attn [2304, 768], eight weight copies in turn."""
    x = torch.rand(rows, 768) - 0.5
    ws = [torch.rand(2304, 768) - 0.5 for _ in range(8)]
    times = []
    with torch.inference_mode():
        for r in range(reps + len(ws)):
            t0 = time.perf_counter()
            torch.nn.functional.linear(x, ws[r % len(ws)])
            if r >= len(ws):
                times.append(time.perf_counter() - t0)
    return {"workload": "skinny", "rows": rows, "gflops": 2 * rows * 2304 * 768 / statistics.median(times) / 1e9}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workloads", default="train:S")
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for w in a.workloads.split(","):
        kind, arg = w.split(":")
        if kind == "train":
            row = train(arg, a.steps)
        elif kind == "decode":
            row = decode(arg, a.steps)
        elif kind == "prefill":
            row = prefill(arg, a.steps)
        elif kind == "skinny":
            row = skinny(int(arg), max(3, a.steps))
        else:
            row = gemm(int(arg), max(3, a.steps))
        # GEMM's reference is NumPy's a @ b (OpenBLAS through Debian's libblas), as the goal is stated.
        row.update(impl="numpy" if kind == "gemm" else "pytorch", threads=a.threads, torch=torch.__version__, max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
