#!/usr/bin/env python3
"""Build a tiny random GPT-2 checkpoint + reference logits with plain NumPy.

Independent re-implementation of HuggingFace `GPT2LMHeadModel.forward`
(transformers/models/gpt2/modeling_gpt2.py, eager attention, no dropout),
computed in float64. Outputs (committed test fixtures):

  src/lib/model/fixtures/tiny-gpt2/       F32, keys with `transformer.` prefix, no lm_head (tied)
  src/lib/model/fixtures/tiny-gpt2-f16/   F16, keys without prefix, explicit lm_head.weight

each containing config.json, model.safetensors and expected.json.
Deterministic: rerun with `python3 scripts/reference/make_tiny_gpt2.py`.
"""
import json
import math
import os
import struct

import numpy as np

# 1265 (not 1234): 1234 makes greedy decoding collapse to a repeated token 0, a weak
# KV-cache check. 1265 yields 7 distinct greedy tokens with top-1/top-2 margins >= 0.05.
SEED = 1265
CFG = dict(vocab_size=97, n_positions=32, n_embd=16, n_layer=2, n_head=4,
           layer_norm_epsilon=1e-5, activation_function="gelu_new")
BOS_EOS = 96
BATCH, SEQ_LEN, GREEDY_STEPS, PREFIX_LEN = 2, 12, 10, 7

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(ROOT, "src", "lib", "model", "fixtures")


# --------------------------------------------------------------------------- weights
def make_weights(rng):
    V, P, C, L = CFG["vocab_size"], CFG["n_positions"], CFG["n_embd"], CFG["n_layer"]
    w = lambda *s: rng.normal(0.0, 0.2, size=s)
    b = lambda *s: rng.normal(0.0, 0.1, size=s)
    g = lambda *s: 1.0 + rng.normal(0.0, 0.1, size=s)
    p = {"wte.weight": w(V, C), "wpe.weight": w(P, C)}
    for i in range(L):
        h = f"h.{i}."
        p[h + "ln_1.weight"] = g(C)
        p[h + "ln_1.bias"] = b(C)
        p[h + "attn.c_attn.weight"] = w(C, 3 * C)   # Conv1D: [in, out]
        p[h + "attn.c_attn.bias"] = b(3 * C)
        p[h + "attn.c_proj.weight"] = w(C, C)
        p[h + "attn.c_proj.bias"] = b(C)
        p[h + "ln_2.weight"] = g(C)
        p[h + "ln_2.bias"] = b(C)
        p[h + "mlp.c_fc.weight"] = w(C, 4 * C)
        p[h + "mlp.c_fc.bias"] = b(4 * C)
        p[h + "mlp.c_proj.weight"] = w(4 * C, C)
        p[h + "mlp.c_proj.bias"] = b(C)
    p["ln_f.weight"] = g(C)
    p["ln_f.bias"] = b(C)
    return p


# --------------------------------------------------------------------------- forward (float64)
def layer_norm(x, weight, bias, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)          # biased variance
    return (x - mu) / np.sqrt(var + eps) * weight + bias


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    m = x.max(-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(-1, keepdims=True)


def forward(p, ids):
    """ids: int array [B, T] -> logits float64 [B, T, V]."""
    ids = np.asarray(ids)
    B, T = ids.shape
    C, H, eps = CFG["n_embd"], CFG["n_head"], CFG["layer_norm_epsilon"]
    D = C // H
    pos = np.arange(T)
    h = p["wte.weight"][ids] + p["wpe.weight"][pos][None]
    causal = np.tril(np.ones((T, T), dtype=bool))
    neg = np.finfo(np.float64).min
    for i in range(CFG["n_layer"]):
        q_ = f"h.{i}."
        a = layer_norm(h, p[q_ + "ln_1.weight"], p[q_ + "ln_1.bias"], eps)
        qkv = a @ p[q_ + "attn.c_attn.weight"] + p[q_ + "attn.c_attn.bias"]
        q, k, v = np.split(qkv, 3, axis=-1)
        heads = lambda t: t.reshape(B, T, H, D).transpose(0, 2, 1, 3)   # [B, H, T, D]
        q, k, v = heads(q), heads(k), heads(v)
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D)
        scores = np.where(causal, scores, neg)
        att = softmax(scores) @ v                                      # [B, H, T, D]
        att = att.transpose(0, 2, 1, 3).reshape(B, T, C)               # merge heads
        att = att @ p[q_ + "attn.c_proj.weight"] + p[q_ + "attn.c_proj.bias"]
        h = h + att
        m = layer_norm(h, p[q_ + "ln_2.weight"], p[q_ + "ln_2.bias"], eps)
        m = gelu_new(m @ p[q_ + "mlp.c_fc.weight"] + p[q_ + "mlp.c_fc.bias"])
        m = m @ p[q_ + "mlp.c_proj.weight"] + p[q_ + "mlp.c_proj.bias"]
        h = h + m
    h = layer_norm(h, p["ln_f.weight"], p["ln_f.bias"], eps)
    return h @ p["wte.weight"].T                                       # tied lm_head


def greedy(p, seq, steps):
    seq, out, margins = list(seq), [], []
    for _ in range(steps):
        last = forward(p, np.array([seq]))[0, -1]
        top2 = np.sort(last)[-2:]
        margins.append(float(top2[1] - top2[0]))
        nxt = int(np.argmax(last))
        out.append(nxt)
        seq.append(nxt)                                                # no KV cache: full re-run
    return out, margins


# --------------------------------------------------------------------------- io
def write_safetensors(path, tensors):
    """tensors: dict name -> (dtype_str, np.ndarray little-endian). Sorted by name."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dt, arr = tensors[name]
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((-len(hb)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for raw in blobs:
            f.write(raw)


def config_json(torch_dtype):
    cfg = {
        "activation_function": CFG["activation_function"],
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": BOS_EOS,
        "embd_pdrop": 0.1,
        "eos_token_id": BOS_EOS,
        "initializer_range": 0.02,
        "layer_norm_epsilon": CFG["layer_norm_epsilon"],
        "model_type": "gpt2",
        "n_ctx": CFG["n_positions"],
        "n_embd": CFG["n_embd"],
        "n_head": CFG["n_head"],
        "n_inner": None,
        "n_layer": CFG["n_layer"],
        "n_positions": CFG["n_positions"],
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": torch_dtype,
        "transformers_version": "4.40.0",
        "use_cache": True,
        "vocab_size": CFG["vocab_size"],
    }
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n"    # HF: indent=2, sort_keys=True


def r7(a):
    """Nested lists of floats rounded to 7 significant digits."""
    a = np.asarray(a)
    if a.ndim == 0:
        return float(f"{float(a):.7g}")
    return [r7(x) for x in a]


def expected(p, ids):
    logits = forward(p, ids)
    g, margins = greedy(p, ids[0], GREEDY_STEPS)
    pre_ids = ids[:1, :PREFIX_LEN]
    pre = forward(p, pre_ids)
    # causal model: prefix logits must equal the full-run logits at those positions
    assert np.allclose(pre[0], logits[0, :PREFIX_LEN], atol=1e-12, rtol=0)
    min_margin = min(margins)
    assert min_margin > 1e-2, f"greedy top-1/top-2 margin too small ({min_margin}); change SEED"
    return {
        "input_ids": ids.tolist(),
        "logits": r7(logits),
        "greedy": g,
        "attention_mask_case": {
            "input_ids": pre_ids.tolist(),
            "attention_mask": [[1] * PREFIX_LEN],
            "logits": r7(pre),
        },
    }, min_margin


def dump_expected(path, obj):
    # compact but one top-level key per line
    lines = [f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in obj.items()]
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def main():
    rng = np.random.default_rng(SEED)
    p = make_weights(rng)
    V = CFG["vocab_size"]
    ids = rng.integers(0, V, size=(BATCH, SEQ_LEN))
    ids[0, 0] = 0          # make sure id 0 and the bos/eos id 96 (last vocab row) are exercised
    ids[1, 4] = BOS_EOS
    ids[0, 9] = BOS_EOS
    ids[1, 10] = 0

    # ---- F32, HF GPT2LMHeadModel key names (transformer.*), lm_head tied (absent)
    d32 = os.path.join(FIXTURES, "tiny-gpt2")
    os.makedirs(d32, exist_ok=True)
    p32 = {k: v.astype("<f4") for k, v in p.items()}
    write_safetensors(os.path.join(d32, "model.safetensors"),
                      {"transformer." + k: ("F32", v) for k, v in p32.items()})
    with open(os.path.join(d32, "config.json"), "w") as f:
        f.write(config_json("float32"))
    e32, m32 = expected({k: v.astype(np.float64) for k, v in p32.items()}, ids)
    dump_expected(os.path.join(d32, "expected.json"), e32)

    # ---- F16, bare GPT2Model key names + explicit lm_head.weight
    d16 = os.path.join(FIXTURES, "tiny-gpt2-f16")
    os.makedirs(d16, exist_ok=True)
    p16 = {k: v.astype("<f2") for k, v in p.items()}
    t16 = {k: ("F16", v) for k, v in p16.items()}
    t16["lm_head.weight"] = ("F16", p16["wte.weight"])
    write_safetensors(os.path.join(d16, "model.safetensors"), t16)
    with open(os.path.join(d16, "config.json"), "w") as f:
        f.write(config_json("float16"))
    e16, m16 = expected({k: v.astype(np.float64) for k, v in p16.items()}, ids)
    dump_expected(os.path.join(d16, "expected.json"), e16)

    print("input_ids:", ids.tolist())
    print("f32 greedy:", e32["greedy"], "min top1-top2 margin %.4g" % m32)
    print("f16 greedy:", e16["greedy"], "min top1-top2 margin %.4g" % m16)
    print("wrote", d32, "and", d16)


if __name__ == "__main__":
    main()
