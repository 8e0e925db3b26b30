#!/usr/bin/env python3
"""Re-read the tiny-gpt2 fixtures: validate the safetensors layout, print keys/dtypes, and
recompute expected.json logits with a loop-based (per-token, per-head) forward pass."""
import json, math, os, struct, sys
import numpy as np

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "lib", "model", "fixtures")
DT = {"F32": "<f4", "F16": "<f2"}

def read_safetensors(path):
    buf = open(path, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    assert n % 8 == 0 and (8 + n) % 8 == 0, "header not padded to 8"
    hdr = json.loads(buf[8:8 + n].decode("utf-8"))   # trailing spaces are valid JSON whitespace
    meta, data, out, end = hdr.pop("__metadata__", None), buf[8 + n:], {}, 0
    for name in sorted(hdr, key=lambda k: hdr[k]["data_offsets"][0]):
        t = hdr[name]; s, e = t["data_offsets"]
        assert s == end, f"gap/overlap at {name}"; end = e
        a = np.frombuffer(data[s:e], dtype=DT[t["dtype"]])
        assert a.size == math.prod(t["shape"]), name
        out[name] = (t["dtype"], a.reshape(t["shape"]))
    assert end == len(data), "trailing bytes"
    assert list(hdr) == sorted(hdr), "keys not sorted"
    return meta, out

def ln(x, w, b, eps):
    mu = x.mean(); var = ((x - mu) ** 2).mean()
    return (x - mu) / math.sqrt(var + eps) * w + b

def forward_loop(p, ids, cfg):
    C, H, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]; D = C // H
    hs = [p["wte.weight"][t] + p["wpe.weight"][i] for i, t in enumerate(ids)]
    for l in range(cfg["n_layer"]):
        g = lambda k: p[f"h.{l}.{k}"]
        qkv = [ln(h, g("ln_1.weight"), g("ln_1.bias"), eps) @ g("attn.c_attn.weight") + g("attn.c_attn.bias") for h in hs]
        new = []
        for i, h in enumerate(hs):
            heads = []
            for hd in range(H):
                q = qkv[i][hd * D:(hd + 1) * D]
                ks = [qkv[j][C + hd * D:C + (hd + 1) * D] for j in range(i + 1)]      # causal: j <= i
                vs = [qkv[j][2 * C + hd * D:2 * C + (hd + 1) * D] for j in range(i + 1)]
                sc = np.array([q @ k for k in ks]) / math.sqrt(D)
                w = np.exp(sc - sc.max()); w /= w.sum()
                heads.append(sum(wj * vj for wj, vj in zip(w, vs)))
            h = h + np.concatenate(heads) @ g("attn.c_proj.weight") + g("attn.c_proj.bias")
            x = ln(h, g("ln_2.weight"), g("ln_2.bias"), eps) @ g("mlp.c_fc.weight") + g("mlp.c_fc.bias")
            x = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
            new.append(h + x @ g("mlp.c_proj.weight") + g("mlp.c_proj.bias"))
        hs = new
    lm = p.get("lm_head.weight", p["wte.weight"])
    return np.array([ln(h, p["ln_f.weight"], p["ln_f.bias"], eps) @ lm.T for h in hs])

ok = True
for name in ("tiny-gpt2", "tiny-gpt2-f16"):
    d = os.path.join(FIX, name)
    meta, t = read_safetensors(os.path.join(d, "model.safetensors"))
    cfg, exp = json.load(open(os.path.join(d, "config.json"))), json.load(open(os.path.join(d, "expected.json")))
    print(f"{name}: metadata={meta}")
    for k, (dt, a) in t.items():
        print(f"  {k:36s} {dt} {list(a.shape)}")
    p = {k.removeprefix("transformer."): a.astype(np.float64) for k, (dt, a) in t.items()}
    for b, ids in enumerate(exp["input_ids"]):
        err = np.abs(forward_loop(p, ids, cfg) - np.array(exp["logits"][b])).max()
        print(f"  seq {b}: max |loop forward - expected| = {err:.2e}"); ok &= err < 1e-5
    seq = list(exp["input_ids"][0])
    for _ in range(len(exp["greedy"])):
        seq.append(int(np.argmax(forward_loop(p, seq, cfg)[-1])))
    ok &= seq[len(exp["input_ids"][0]):] == exp["greedy"]
    pre = exp["attention_mask_case"]
    err = np.abs(forward_loop(p, pre["input_ids"][0], cfg) - np.array(pre["logits"][0])).max()
    print(f"  greedy ok={seq[12:] == exp['greedy']}  prefix max err={err:.2e}"); ok &= err < 1e-5
print("ALL OK" if ok else "MISMATCH"); sys.exit(0 if ok else 1)
