#!/usr/bin/env python3
"""PEFT's PiSSA and OLoRA starting points on the tiny GPT-2 fixture, tensor by tensor.

For two layers of layer 0 (attn.c_attn, [in 16, out 48], and mlp.c_proj, [64, 16], so both a wide
and a tall weight), r 4, lora_alpha 8, writes what PEFT 0.21's init puts in lora_A [r, in],
lora_B [out, r] and the residual base weight (PEFT's W - scaling * B A, in GPT-2's Conv1D layout
[in, out]) to src/lib/peft/fixtures/peft-0.21/init_reference.json, which
src/lib/peft/lora/weight-init.test.ts compares with ours.

- pissa: get_peft_model on GPT2LMHeadModel with init_lora_weights="pissa" (PEFT honours GPT-2's
  fan_in_fan_out here).
- olora: PEFT 0.21's olora_init ignores fan_in_fan_out, so on GPT-2's Conv1D it factors [in, out]
  and breaks the layer (this script records that the c_attn forward then fails). The reference is
  therefore PEFT's OLoRA on an nn.Linear holding the same weight transposed ([out, in], as a
  Linear stores it), which is what OLoRA means for this layer.

    /work/venv/bin/python scripts/reference/peft_interop/make_init_reference.py
"""
import json
import os

import torch
import transformers
from transformers import GPT2LMHeadModel

from peft import LoraConfig, get_peft_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BASE = os.path.join(ROOT, "src/lib/model/fixtures/tiny-gpt2")
OUT = os.path.join(ROOT, "src/lib/peft/fixtures/peft-0.21/init_reference.json")
LAYERS = ["attn.c_attn", "mlp.c_proj"]
R, ALPHA = 4, 8


def flat(t):
    return [float(f"{v:.8g}") for v in t.detach().flatten().tolist()]


def module(model, name):
    m = model.base_model.model.transformer.h[0]
    for part in name.split("."):
        m = getattr(m, part)
    return m


class Wrapped(torch.nn.Module):
    """One nn.Linear holding a GPT-2 Conv1D's weight transposed."""

    def __init__(self, conv):
        super().__init__()
        w = conv.weight.detach()  # [in, out]
        self.lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            self.lin.weight.copy_(w.T)
            self.lin.bias.copy_(conv.bias)

    def forward(self, x):
        return self.lin(x)


def main():
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    out = {"r": R, "lora_alpha": ALPHA, "layers": {}, "notes": {}}
    original = GPT2LMHeadModel.from_pretrained(BASE)
    pissa = get_peft_model(
        GPT2LMHeadModel.from_pretrained(BASE),
        LoraConfig(r=R, lora_alpha=ALPHA, target_modules=LAYERS, init_lora_weights="pissa"),
    )
    for name in LAYERS:
        conv = original.transformer.h[0]
        for part in name.split("."):
            conv = getattr(conv, part)
        m = module(pissa, name)
        entry = {
            "in": conv.weight.shape[0],
            "out": conv.weight.shape[1],
            "pissa": {
                "lora_A": flat(m.lora_A["default"].weight),
                "lora_B": flat(m.lora_B["default"].weight),
                "residual": flat(m.base_layer.weight),  # Conv1D layout [in, out]
            },
        }
        wrapped = get_peft_model(
            Wrapped(conv), LoraConfig(r=R, lora_alpha=ALPHA, target_modules=["lin"], init_lora_weights="olora")
        )
        lin = wrapped.base_model.model.lin
        entry["olora"] = {
            "lora_A": flat(lin.lora_A["default"].weight),
            "lora_B": flat(lin.lora_B["default"].weight),
            "residual": flat(lin.base_layer.weight.T),  # back to [in, out]
        }
        out["layers"][name] = entry
    try:
        broken = get_peft_model(
            GPT2LMHeadModel.from_pretrained(BASE),
            LoraConfig(r=R, lora_alpha=ALPHA, target_modules=["c_attn"], init_lora_weights="olora"),
        )
        broken(input_ids=torch.tensor([[1, 2, 3]]))
        out["notes"]["olora_on_gpt2_conv1d"] = "ran"
    except Exception as e:  # noqa: BLE001 - recording PEFT's failure is the point
        out["notes"]["olora_on_gpt2_conv1d"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    with open(OUT, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(OUT, os.path.getsize(OUT), out["notes"])


if __name__ == "__main__":
    main()
