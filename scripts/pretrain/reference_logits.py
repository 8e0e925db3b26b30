"""Writes torch's logits for a bundled model on a fixed input, so a unit test can check that our
tfjs engine matches the model as PyTorch trained it (to 1e-4).
GPT-2 folders are read into pretrain_torch.py's own GPT class; Llama folders (config.json model_type
"llama") by transformers itself (AutoModelForCausalLM, eager attention, float32), so the fixture is
transformers' reading of the folder, not ours.
Run: /usr/bin/python3 scripts/pretrain/reference_logits.py peftlab-s
     /work/venv/bin/python scripts/pretrain/reference_logits.py peftlab-m-llama
     (optional: --dir FOLDER instead of public/models/<id>, --fixture FILE instead of
      src/lib/model/fixtures/<id>-torch-logits.json)
"""
import argparse, json, struct, sys
import numpy as np
import torch
sys.path.insert(0, "scripts/pretrain")
from pretrain_torch import GPT, BLOCK

def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        dt = {"F32": "<f4", "F16": "<f2"}[v["dtype"]]
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=dt).astype(np.float32).reshape(v["shape"])
    return out

ap = argparse.ArgumentParser()
ap.add_argument("id")
ap.add_argument("--dir", default=None)
ap.add_argument("--fixture", default=None)
a = ap.parse_args()
mid = a.id
d = a.dir or f"public/models/{mid}"
fixture = a.fixture or f"src/lib/model/fixtures/{mid}-torch-logits.json"
cfg = json.load(open(f"{d}/config.json"))

def llama_model():
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()

def gpt2_model():
    w = read_safetensors(f"{d}/model.safetensors")
    m = GPT(cfg["vocab_size"], cfg["n_positions"], cfg["n_embd"], cfg["n_layer"], cfg["n_head"])
    load_gpt2_weights(m, w)
    return m

def load_gpt2_weights(m, w):
    with torch.no_grad():
        m.wte.copy_(torch.from_numpy(w["transformer.wte.weight"])); m.wpe.copy_(torch.from_numpy(w["transformer.wpe.weight"]))
        m.ln_f.weight.copy_(torch.from_numpy(w["transformer.ln_f.weight"])); m.ln_f.bias.copy_(torch.from_numpy(w["transformer.ln_f.bias"]))
        for i, b in enumerate(m.blocks):
            p = f"transformer.h.{i}."
            for name, t in [("ln_1.weight", b.ln_1.weight), ("ln_1.bias", b.ln_1.bias), ("ln_2.weight", b.ln_2.weight),
                            ("ln_2.bias", b.ln_2.bias), ("attn.c_attn.weight", b.c_attn_w), ("attn.c_attn.bias", b.c_attn_b),
                            ("attn.c_proj.weight", b.c_proj_w), ("attn.c_proj.bias", b.c_proj_b), ("mlp.c_fc.weight", b.fc_w),
                            ("mlp.c_fc.bias", b.fc_b), ("mlp.c_proj.weight", b.mlp_proj_w), ("mlp.c_proj.bias", b.mlp_proj_b)]:
                t.copy_(torch.from_numpy(w[p + name]))

llama = cfg["model_type"] == "llama"
m = llama_model() if llama else gpt2_model()
ids = [int(x) for x in np.random.default_rng(7).integers(0, cfg["vocab_size"], size=24)]
with torch.no_grad():
    out = m(torch.tensor([ids]))
    logits = (out.logits if llama else out)[0].double().numpy()
VSUB = 128  # first 128 vocabulary entries at every position keeps the fixture small
out = {"model": mid, "input_ids": ids, "vocab_slice": VSUB,
       "logits_slice": [[round(float(x), 6) for x in row[:VSUB]] for row in logits],
       "argmax": [int(r.argmax()) for r in logits]}
if llama:
    import transformers
    out["reference"] = f"transformers {transformers.__version__} {cfg['architectures'][0]}, eager attention, float32"
json.dump(out, open(fixture, "w"))
print("wrote", fixture)
