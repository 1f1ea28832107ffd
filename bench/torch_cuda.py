"""PyTorch eager CUDA FP32 twins of `attn bench --backend webgpu`: the same shapes, timed the same way.

Usage: python3 bench/torch_cuda.py [--workloads train:M,train:G,train-log10:M,decode:124M,decode-ahead:124M,gemm:4096] [--steps K]
Prints one JSON line per workload with the fields attn's rows have (workload,
config, tokens_per_s, step_ms; gflops for gemm), backend "cuda". The model is
torch_reference.py's nanoGPT-shaped GPT, moved to the GPU; TF32 is switched off
so the comparison is FP32 against FP32. Each timed step ends with
torch.cuda.synchronize(), as attn's step ends when its loss is read back.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import CONFIGS, DECODE, GPT, cached_forward  # noqa: E402

DEV = "cuda"
torch.set_default_device(DEV)  # torch_reference makes its position indices without a device


def train(name, steps, read_every=1):
    """Median step time. read_every 1: loss.item() every step, each step timed alone. read_every 10
    (`train-log10`): loss.item() every 10th step, as nanoGPT and `attn train` read at their log
    interval; a block of 10 steps timed, over 10 (median of max(3, steps // 2) blocks)."""
    c = CONFIGS[name]
    torch.manual_seed(0)
    model = GPT(c).to(DEV)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    B, T = c["batch"], c["block_size"]
    x = torch.randint(c["vocab"], (B, T), device=DEV)
    y = torch.randint(c["vocab"], (B, T), device=DEV)
    times = []

    def step():
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    if read_every == 1:
        for i in range(steps + 2):  # two warm-up steps
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            step().item()  # attn reads each step's loss back too
            if i >= 2:
                times.append(time.perf_counter() - t0)
    else:
        for _ in range(2):
            step().item()
        for _ in range(max(3, steps // 2)):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(read_every):
                loss = step()
            loss.item()
            times.append((time.perf_counter() - t0) / read_every)
    dt = statistics.median(times)
    row = {"workload": "train", "config": name, "tokens_per_s": B * T / dt, "step_ms": dt * 1000}
    if read_every != 1:
        row["reads"] = read_every
    return row


def decode(name, steps, prompt=16):
    """Batch-1 greedy decoding with a KV cache after a 16-token prompt; each token's argmax comes back to the host."""
    c = DECODE[name]
    torch.manual_seed(0)
    model = GPT(c).to(DEV).eval()
    idx = torch.randint(c["vocab"], (1, prompt), device=DEV)
    cache = [[None, None] for _ in model.h]
    nxt = int(cached_forward(model, idx, cache, 0).argmax(-1))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        nxt = int(cached_forward(model, torch.tensor([[nxt]], device=DEV), cache, prompt + i).argmax(-1))
        if i >= 2:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    return {"workload": "decode", "config": name, "dtype": "fp32", "tokens_per_s": 1 / dt, "step_ms": dt * 1000, "prompt": prompt}


def decode_ahead(name, steps, prompt=16):
    """decode's tokens with none of them read back until the end: each argmax stays on the GPU and feeds
    the next step, so the host queues steps as fast as it can launch them. The twin of attn's decoding
    queued ahead (ahead rows), and PyTorch eager's best case for a greedy loop; step_ms is the whole
    loop's time over its tokens."""
    c = DECODE[name]
    torch.manual_seed(0)
    model = GPT(c).to(DEV).eval()
    idx = torch.randint(c["vocab"], (1, prompt), device=DEV)
    times = []
    for _ in range(3):
        cache = [[None, None] for _ in model.h]
        nxt = cached_forward(model, idx, cache, 0).argmax(-1).view(1, 1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = []
        for i in range(steps):
            nxt = cached_forward(model, nxt, cache, prompt + i).argmax(-1).view(1, 1)
            out.append(nxt)
        torch.cat(out).tolist()
        times.append((time.perf_counter() - t0) / steps)
    dt = statistics.median(times)
    return {"workload": "decode", "config": name, "dtype": "fp32", "ahead": "all", "tokens_per_s": 1 / dt, "step_ms": dt * 1000, "prompt": prompt}


def gemm(n, reps):
    a = torch.rand(n, n, device=DEV)
    b = torch.rand(n, n, device=DEV)
    a @ b
    times = []
    per = 10  # products per timed sync, as attn's WebGPU bench times its own
    for _ in range(reps + 2):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(per):
            a @ b
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / per)
    return {"workload": "gemm", "n": n, "gflops": 2 * n**3 / statistics.median(times[2:]) / 1e9, "per_timing": per}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workloads", default="train:M,train:G,train-log10:M,train-log10:G,decode:124M,decode-ahead:124M,gemm:1024,gemm:2048,gemm:4096")
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"workload": "cuda", "error": "torch.cuda.is_available() is False"}), flush=True)
        sys.exit(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(json.dumps({"workload": "adapter", "backend": "cuda", "adapter": torch.cuda.get_device_name(0), "torch": torch.__version__}), flush=True)
    for w in a.workloads.split(","):
        kind, arg = w.split(":")
        try:
            if kind == "train":
                row = train(arg, a.steps)
            elif kind == "train-log10":
                row = train(arg, a.steps, read_every=10)
            elif kind == "decode":
                row = decode(arg, a.steps * 8)
            elif kind == "decode-ahead":
                row = decode_ahead(arg, a.steps * 8)
            else:
                row = gemm(int(arg), max(3, a.steps))
        except Exception as e:  # one failing workload must not hide the others
            row = {"workload": kind, "config": arg, "error": str(e).splitlines()[0] if str(e) else type(e).__name__}
        row.update(impl="pytorch", backend="cuda", threads=1, torch=torch.__version__)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
