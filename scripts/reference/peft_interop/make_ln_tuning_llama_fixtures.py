#!/usr/bin/env python3
"""LN tuning adapters made by PEFT 0.21 on the tiny Llama-family fixtures, with PEFT's logits.

PEFT's LNTuningModel deep-copies each targeted norm; on the Llama family those are RMSNorms, with a
weight and no bias, so the file holds `<norm>.ln_tuning_layers.weight` only. Both cases leave
target_modules None, so PEFT fills in its own defaults (TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING),
which is what the app must pick for the same model types:

  ln_tuning        tiny-llama: input_layernorm, post_attention_layernorm, norm (model.norm too)
  ln_tuning_qwen2  tiny-qwen2: post_attention_layernorm only (PEFT's choice for qwen2)

Every copied gain is set to 1 + N(0, 0.2^2) (the copies start equal to the base's, which any reader
would pass). Each folder holds PEFT's adapter_config.json and adapter_model.safetensors and
expected.json (input_ids, logits of PeftModel in eval mode, and the same after merge_and_unload,
which must agree to 1e-5). Run from anywhere:

    /work/venv/bin/python scripts/reference/peft_interop/make_ln_tuning_llama_fixtures.py
"""
import json
import os
import shutil
import subprocess

import torch
from transformers import AutoModelForCausalLM

import peft
from peft import LNTuningConfig, PeftModel, get_peft_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
MODELS = os.path.join("src", "lib", "model", "fixtures")
OUT = os.path.join("src", "lib", "peft", "fixtures", "peft-0.21-llama")
INPUT_IDS = [[5, 17, 42, 7, 99, 3, 250, 12, 64, 8, 31, 77], [9, 1, 2, 150, 33, 4, 18, 6, 200, 45, 11, 27]]

CASES = {
    "ln_tuning": "tiny-llama",
    "ln_tuning_qwen2": "tiny-qwen2",
}


def base(model):
    return AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, model), attn_implementation="eager").eval()


def logits(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor(INPUT_IDS)).logits.float()


def make(name, model_name, seed):
    torch.manual_seed(seed)
    plain = logits(base(model_name))
    model = get_peft_model(base(model_name), LNTuningConfig(task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "ln_tuning_layers" in n:
                p.copy_(1 + 0.2 * torch.randn_like(p))
    model.eval()
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    # PEFT writes a model card template too; the fixture is the adapter, not the card.
    os.remove(os.path.join(out, "README.md"))
    got = logits(model)
    again = logits(PeftModel.from_pretrained(base(model_name), out).eval())
    assert (again - got).abs().max().item() < 1e-6
    merged = logits(PeftModel.from_pretrained(base(model_name), out).merge_and_unload().eval())
    merge_diff = (merged - got).abs().max().item()
    assert merge_diff < 1e-5, merge_diff
    effect = (got - plain).abs().max().item()
    assert effect > 0.1, effect
    shapes = {n: list(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(
            {
                "base": model_name,
                "input_ids": INPUT_IDS,
                "logits": [[[round(float(v), 6) for v in row] for row in seq] for seq in got],
                "trainable": shapes,
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
    for i, (name, model_name) in enumerate(CASES.items()):
        make(name, model_name, 200 + i)
    # Whitespace only: the repo's lint checks every JSON file that .prettierignore does not list.
    subprocess.run(
        ["npx", "prettier", "--write", "--log-level", "warn", *(os.path.join(OUT, n) for n in CASES)], check=True
    )


if __name__ == "__main__":
    main()
