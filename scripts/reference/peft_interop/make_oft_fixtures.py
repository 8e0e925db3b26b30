#!/usr/bin/env python3
"""OFT adapters made by PEFT 0.21 on the tiny Llama fixture, with PEFT's logits.

PEFT 0.21's OFT takes nn.Linear, nn.Conv2d and nn.Embedding only (peft/tuners/oft/model.py,
_get_tuner_layer_class): GPT-2's Conv1D is refused, so these fixtures are made on
src/lib/model/fixtures/tiny-llama (nn.Linear, hidden 32, q/o 32->32, k/v 32->16, gate/up 32->80,
down 80->32). Every oft_R weight is set to N(0, 0.1^2) (PEFT's init makes it zero: the identity
rotation, which any reader would pass), so the logits test the rotation's arithmetic. Cases:

  oft             q_proj, v_proj, down_proj; oft_block_size 8 (r 4 on q/v, 10 on down_proj), the
                  default Cayley-Neumann series (5 terms)
  oft_exact       q_proj, up_proj; r 4 (block size 8), use_cayley_neumann false: the exact Cayley
                  transform (I - Q)(I + Q)^-1
  oft_share_coft  k_proj, o_proj, down_proj; oft_block_size 4, block_share (one block per layer,
                  repeated), coft with eps 0.3 (the weights are projected onto the eps-ball in the
                  forward), 3 Neumann terms
  oft_adjusted    q_proj, down_proj; oft_block_size 6, which divides neither 32 nor 80: PEFT
                  adjusts it per layer (adjust_oft_parameters: 4 on q_proj, 5 on down_proj)

Each folder holds PEFT's adapter_config.json and adapter_model.safetensors and expected.json
(input_ids, logits of PeftModel in eval mode; merge_and_unload must agree to 1e-5). Run from
anywhere: python scripts/reference/peft_interop/make_oft_fixtures.py
"""
import json
import os
import shutil
import warnings

import torch
from transformers import LlamaForCausalLM

import peft
from peft import OFTConfig, PeftModel, get_peft_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BASE = os.path.join("src", "lib", "model", "fixtures", "tiny-llama")
OUT = os.path.join("src", "lib", "peft", "fixtures", "peft-0.21-llama")
INPUT_IDS = [[5, 17, 42, 7, 99, 3, 250, 12, 64, 8, 31, 77], [9, 1, 2, 150, 33, 4, 18, 6, 200, 45, 11, 27]]

CASES = {
    "oft": OFTConfig(task_type="CAUSAL_LM", oft_block_size=8, target_modules=["q_proj", "v_proj", "down_proj"]),
    "oft_exact": OFTConfig(
        task_type="CAUSAL_LM", r=4, oft_block_size=0, use_cayley_neumann=False, target_modules=["q_proj", "up_proj"]
    ),
    "oft_share_coft": OFTConfig(
        task_type="CAUSAL_LM",
        oft_block_size=4,
        block_share=True,
        coft=True,
        eps=0.3,
        num_cayley_neumann_terms=3,
        target_modules=["k_proj", "o_proj", "down_proj"],
    ),
    "oft_adjusted": OFTConfig(task_type="CAUSAL_LM", oft_block_size=6, target_modules=["q_proj", "down_proj"]),
}


def base():
    return LlamaForCausalLM.from_pretrained(BASE, attn_implementation="eager").eval()


def logits(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor(INPUT_IDS)).logits.float()


def make(name, config, seed):
    torch.manual_seed(seed)
    plain = logits(base())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = get_peft_model(base(), config)
    for w in caught:
        if "oft" in str(w.message).lower():
            print("    PEFT:", w.message)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "oft_R" in n:
                p.copy_(0.1 * torch.randn_like(p))
    model.eval()
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    # coft projects the weights in place on each forward: the file holds what the forward used.
    got = logits(model)
    model.save_pretrained(out)
    # PEFT writes a model card template too; the fixture is the adapter, not the card.
    os.remove(os.path.join(out, "README.md"))
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
        make(name, config, 200 + i)


if __name__ == "__main__":
    main()
