"""nanoGPT's shakespeare-char CPU recipe in PyTorch: the reference for
`attn bench --workloads recipe` and for `attn train`'s defaults.

Usage: python3 torch_recipe.py --data tinyshakespeare.txt [--seed N] [--threads N] [--iters 2000] [--gelu none|tanh]

The settings are nanoGPT's (train.py with config/train_shakespeare_char.py
and the README's CPU overrides): 4 layers, 4 heads, 128 dimensions, context
64, batch 12, no biases, dropout 0, AdamW (lr 1e-3, betas 0.9/0.99, weight
decay 0.1 on tensors of rank ≥ 2), 100 warm-up steps then cosine decay to
1e-4 at step 2000, gradients clipped to norm 1, and a loss estimate from 20
random batches of each split every 250 steps. The model is nanoGPT's:
pre-norm blocks, exact GELU, the output head tied to the token embedding,
weights drawn from N(0, 0.02) with the residual projections scaled by
1/sqrt(2·n_layer). `--gelu tanh` swaps in GPT-2's tanh approximation, which
attn's GPT uses: the one known difference between the two recipes.

Prints one JSON line: the final estimates, the loss over the whole
validation split (non-overlapping windows of the context, as `attn eval
--split val` scores it), and the wall time of the training loop.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn

from torch_reference import GPT


def nanogpt(vocab, block_size, gelu="none"):
    """nanoGPT's model for the recipe: torch_reference's GPT without biases, exact GELU, nanoGPT's init."""
    n_layer = 4
    model = GPT(dict(n_layer=n_layer, n_head=4, n_embd=128, block_size=block_size, vocab=vocab, bias=False, gelu=gelu))
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
            nn.init.normal_(p, 0.0, std)
    # nanoGPT's LayerNorm has no bias (PyTorch 1.13's cannot drop it): hold it at zero, untrained.
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            nn.init.zeros_(m.bias)
            m.bias.requires_grad_(False)
    return model


def lr_at(it, lr=1e-3, min_lr=1e-4, warmup=100, decay=2000):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay:
        return min_lr
    ratio = (it - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--gelu", choices=["none", "tanh"], default="none")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    text = open(a.data, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(ids))
    splits = {"train": ids[:n], "val": ids[n:]}
    B, T = 12, 64

    def batch(split):
        data = splits[split]
        ix = torch.randint(len(data) - T, (B,))
        return torch.stack([data[i:i + T] for i in ix]), torch.stack([data[i + 1:i + 1 + T] for i in ix])

    model = nanogpt(len(chars), T, a.gelu)
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))

    @torch.no_grad()
    def estimate():
        model.eval()
        out = {s: sum(model(*batch(s)).item() for _ in range(20)) / 20 for s in ("train", "val")}
        model.train()
        return out

    t0 = time.perf_counter()
    est = None
    for it in range(a.iters + 1):
        if it % 250 == 0 or it == a.iters:
            est = estimate()
        if it == a.iters:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(it, decay=a.iters)
        loss = model(*batch("train"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - t0

    with torch.no_grad():
        model.eval()
        val = splits["val"]
        total, count = 0.0, 0
        for s in range(0, len(val) - 1, T):
            x = val[s:s + T]
            y = val[s + 1:s + 1 + T]
            x = x[: len(y)]
            total += model(x[None], y[None]).item() * len(y)
            count += len(y)
    print(json.dumps({"workload": "recipe", "impl": "pytorch", "gelu": a.gelu, "seed": a.seed, "threads": a.threads, "val_estimate": est["val"],
                      "train_estimate": est["train"], "val_full": total / count, "seconds": seconds}))


if __name__ == "__main__":
    main()
