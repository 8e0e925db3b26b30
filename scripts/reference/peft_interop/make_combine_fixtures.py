#!/usr/bin/env python3
"""PEFT 0.21's add_weighted_adapter on two LoRA adapters of the tiny GPT-2, for
src/lib/peft/lora/combine.test.ts.

Two adapters on c_attn + mlp.c_fc, r 2 each, lora_alpha 4 ("a", scaling 2) and 2 ("b", scaling 1),
every A and B N(0, 0.2^2), are combined with weights [0.7, -0.4] by each deterministic
combination type (linear, cat, svd at rank 2 and 3, svd with svd_clamp 0.9, ties and
magnitude_prune at density 0.5, ties with majority_sign_method "frequency"). dare_linear and
dare_ties draw torch's random masks, so they are not here (the test checks their properties).

Writes src/lib/peft/fixtures/peft-0.21-combine/add_weighted_adapter.json: the inputs' A, B (PEFT's layout,
lora_A [r, in], lora_B [out, r]) and scalings, and each result's A, B per module, with PEFT's
weight matrix ΔW = B A * scaling for the svd cases (A and B are sign-ambiguous there).
"""
import json
import os

import torch
from transformers import GPT2LMHeadModel

import peft
from peft import LoraConfig, get_peft_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BASE = os.path.join(ROOT, "src", "lib", "model", "fixtures", "tiny-gpt2")
OUT = os.path.join(ROOT, "src", "lib", "peft", "fixtures", "peft-0.21-combine", "add_weighted_adapter.json")
TARGETS = ["c_attn", "mlp.c_fc"]
WEIGHTS = [0.7, -0.4]
COMBOS = {
    "linear": dict(combination_type="linear"),
    "cat": dict(combination_type="cat"),
    "svd": dict(combination_type="svd"),
    "svd_rank3": dict(combination_type="svd", svd_rank=3),
    "svd_clamp": dict(combination_type="svd", svd_rank=3, svd_clamp=0.9),
    "ties": dict(combination_type="ties", density=0.5),
    "ties_frequency": dict(combination_type="ties", density=0.5, majority_sign_method="frequency"),
    "magnitude_prune": dict(combination_type="magnitude_prune", density=0.5),
}


def rows(t):
    return [[round(float(x), 7) for x in row] for row in t]


def main():
    torch.manual_seed(5)
    model = get_peft_model(
        GPT2LMHeadModel.from_pretrained(BASE),
        LoraConfig(r=2, lora_alpha=4, target_modules=TARGETS, fan_in_fan_out=True),
        adapter_name="a",
    )
    model.add_adapter("b", LoraConfig(r=2, lora_alpha=2, target_modules=TARGETS, fan_in_fan_out=True))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(0.2 * torch.randn_like(p))
    layers = {n: m for n, m in model.base_model.model.named_modules() if hasattr(m, "lora_A") and "a" in m.lora_A}
    out = {"weights": WEIGHTS, "scaling": {"a": 2.0, "b": 1.0}, "inputs": {}, "results": {}, "made_by": f"peft {peft.__version__}"}
    for name, m in layers.items():
        out["inputs"][name] = {k: {"A": rows(m.lora_A[k].weight), "B": rows(m.lora_B[k].weight)} for k in ("a", "b")}
    for combo, kwargs in COMBOS.items():
        model.add_weighted_adapter(["a", "b"], WEIGHTS, combo, **kwargs)
        res = {}
        for name, m in layers.items():
            A, B = m.lora_A[combo].weight, m.lora_B[combo].weight
            entry = {"A": rows(A), "B": rows(B), "scaling": m.scaling[combo]}
            if kwargs["combination_type"] == "svd":
                entry["delta"] = rows((B @ A) * m.scaling[combo])  # [out, in]
            res[name] = entry
        out["results"][combo] = res
        model.delete_adapter(combo)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f)
    print("modules", list(layers), "size", os.path.getsize(OUT))


if __name__ == "__main__":
    main()
