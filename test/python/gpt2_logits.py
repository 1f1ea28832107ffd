"""Logits of a Hugging Face GPT-2 directory, computed the way transformers' GPT2LMHeadModel does.

Usage: python3 gpt2_logits.py DIR ID [ID ...]  → prints a JSON list of logits rows.
Independent of attn: it reads model.safetensors itself (header + little-endian data), applies
GPT-2's Conv1D layers as x @ W + b with W stored [in, out], the tanh GELU, pre-norm blocks and
the head tied to wte — so an exported directory that passes here is laid out as PyTorch's
GPT-2 code expects.
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", f"{name}: {t['dtype']}"
        a, b = t["data_offsets"]
        out[name.removeprefix("transformer.")] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").copy().reshape(t["shape"]))
    return out, header.get("__metadata__", {})


def main():
    d = sys.argv[1]
    ids = torch.tensor([int(x) for x in sys.argv[2:]])
    cfg = json.load(open(f"{d}/config.json"))
    w, meta = read_safetensors(f"{d}/model.safetensors")
    assert meta.get("format") == "pt", "transformers requires safetensors metadata format=pt"
    eps, H = cfg["layer_norm_epsilon"], cfg["n_head"]
    T = len(ids)
    x = w["wte.weight"][ids] + w["wpe.weight"][:T]
    ln = lambda x, p: F.layer_norm(x, (x.shape[-1],), w[p + ".weight"], w[p + ".bias"], eps)
    conv1d = lambda x, p: x @ w[p + ".weight"] + w[p + ".bias"]  # GPT-2's Conv1D: weight [in, out]
    for i in range(cfg["n_layer"]):
        p = f"h.{i}"
        C = x.shape[-1]
        q, k, v = conv1d(ln(x, p + ".ln_1"), p + ".attn.c_attn").split(C, dim=-1)
        q, k, v = (t.view(T, H, C // H).transpose(0, 1) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(C // H)
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
        x = x + conv1d((att @ v).transpose(0, 1).reshape(T, C), p + ".attn.c_proj")
        h = conv1d(ln(x, p + ".ln_2"), p + ".mlp.c_fc")
        x = x + conv1d(F.gelu(h, approximate="tanh"), p + ".mlp.c_proj")
    logits = ln(x, "ln_f") @ w["wte.weight"].t()
    print(json.dumps(logits.tolist()))


if __name__ == "__main__":
    main()
