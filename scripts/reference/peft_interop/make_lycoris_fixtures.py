#!/usr/bin/env python3
"""LoHa and LoKr adapters made by PEFT 0.21 on the tiny Llama fixture, with PEFT's logits.

PEFT 0.21 refuses LoHa and LoKr on GPT-2's Conv1D layers, so these fixtures are made on
src/lib/model/fixtures/tiny-llama (nn.Linear, hidden 32, q/o 32->32, k/v 32->16, gate/up 32->80,
down 80->32). Every adapter tensor is set to N(0, 0.2^2) (PEFT's inits make hada_w2_b and lokr_w1
zero, which any reader would pass), so the logits test the delta's arithmetic. Cases:

  loha            q_proj, v_proj, down_proj; r 4, alpha 6 (scaling 1.5)
  lokr            q_proj, v_proj; r 8, alpha 4: every Kronecker factor is a full matrix
                  (r >= max(b, d) / 2), lokr_w1 [a, c] and lokr_w2 [b, d]
  lokr_factored   q_proj, v_proj, down_proj; r 2, alpha 3, decompose_both: lokr_w2 is factored
                  everywhere (lokr_w2_a, lokr_w2_b), lokr_w1 on down_proj only (4x8 factors against
                  q_proj's 4x4, so r 2 < max / 2 there only): both forms in one file
  lokr_factor4    q_proj, up_proj; r 8, decompose_factor 4 (32 = 4 x 8, 80 = 4 x 20)

Each folder holds PEFT's adapter_config.json and adapter_model.safetensors and expected.json
(input_ids, logits of PeftModel in eval mode, and the same after merge_and_unload, which must agree
to 1e-5). Run from anywhere: python scripts/reference/peft_interop/make_lycoris_fixtures.py
"""
import json
import os
import shutil

import torch
from transformers import LlamaForCausalLM

import peft
from peft import LoHaConfig, LoKrConfig, PeftModel, get_peft_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BASE = os.path.join("src", "lib", "model", "fixtures", "tiny-llama")
OUT = os.path.join("src", "lib", "peft", "fixtures", "peft-0.21-llama")
INPUT_IDS = [[5, 17, 42, 7, 99, 3, 250, 12, 64, 8, 31, 77], [9, 1, 2, 150, 33, 4, 18, 6, 200, 45, 11, 27]]

CASES = {
    "loha": LoHaConfig(task_type="CAUSAL_LM", r=4, alpha=6, target_modules=["q_proj", "v_proj", "down_proj"]),
    "lokr": LoKrConfig(task_type="CAUSAL_LM", r=8, alpha=4, target_modules=["q_proj", "v_proj"]),
    "lokr_factored": LoKrConfig(
        task_type="CAUSAL_LM", r=2, alpha=3, decompose_both=True, target_modules=["q_proj", "v_proj", "down_proj"]
    ),
    "lokr_factor4": LoKrConfig(task_type="CAUSAL_LM", r=8, alpha=8, decompose_factor=4, target_modules=["q_proj", "up_proj"]),
}


def base():
    return LlamaForCausalLM.from_pretrained(BASE, attn_implementation="eager").eval()


def logits(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor(INPUT_IDS)).logits.float()


def make(name, config, seed):
    torch.manual_seed(seed)
    plain = logits(base())
    model = get_peft_model(base(), config)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "hada_" in n or "lokr_" in n:
                p.copy_(0.2 * torch.randn_like(p))
    model.eval()
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    # PEFT writes a model card template too; the fixture is the adapter, not the card.
    os.remove(os.path.join(out, "README.md"))
    got = logits(model)
    again = logits(PeftModel.from_pretrained(base(), out).eval())
    assert (again - got).abs().max().item() < 1e-6
    merged = logits(PeftModel.from_pretrained(base(), out).merge_and_unload().eval())
    merge_diff = (merged - got).abs().max().item()
    assert merge_diff < 1e-5, merge_diff
    effect = (got - plain).abs().max().item()
    assert effect > 0.1, effect
    shapes = {n: list(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(
            {
                "input_ids": INPUT_IDS,
                "logits": [[[round(float(v), 6) for v in row] for row in seq] for seq in got],
                "adapter_effect_max_abs": round(effect, 4),
                "merge_max_abs_diff": merge_diff,
                "made_by": f"peft {peft.__version__}",
            },
            f,
        )
    print(name, "effect", round(effect, 3), "merge diff", merge_diff)
    for n, s in shapes.items():
        print("   ", n.replace("base_model.model.", ""), s)


def main():
    os.chdir(ROOT)
    torch.set_num_threads(1)
    for i, (name, config) in enumerate(CASES.items()):
        make(name, config, 100 + i)


if __name__ == "__main__":
    main()
