#!/usr/bin/env python3
"""BOFT adapters made by PEFT 0.21 on the tiny Llama fixture, with PEFT's logits.

PEFT 0.21's BOFT takes nn.Linear and nn.Conv2d only (peft/tuners/boft/model.py), so GPT-2's Conv1D
is refused and these fixtures are made on src/lib/model/fixtures/tiny-llama (hidden 32, q/o 32->32,
k/v 32->16, gate/up 32->80, down 80->32). Every boft_R is set to N(0, 0.1^2) and every boft_s to
N(1, 0.1^2) (PEFT's init is R zero, s one: the identity, which any reader would pass).

PEFT builds the butterfly's block-diagonal matrices with a CUDA extension (layer.py, get_fbd_cuda
and FastBlockDiag); where it cannot compile one (any machine without CUDA, as this one) it warns and
sets boft_n_butterfly_factor to 1, so BOFT is OFT with a scale there. The `boft` case is that path
as PEFT runs it here. For the butterfly cases the extension is replaced by `BlockDiagStub`, which
does what fbd_cuda's forward and backward do (torch.block_diag over each factor's blocks, and its
transpose) in plain torch; everything else (permutations, Cayley, the product of factors, the
scale) is PEFT's own code. Cases:

  boft            q_proj, v_proj, down_proj; boft_block_size 4, factor 1 (PEFT's CPU path)
  boft_butterfly  q_proj, down_proj; boft_block_size 4, boft_n_butterfly_factor 2
  boft_block_num  q_proj, k_proj, o_proj; boft_block_num 4 (block size 8), boft_n_butterfly_factor 3

Each folder holds PEFT's adapter_config.json and adapter_model.safetensors and expected.json
(input_ids, logits of PeftModel in eval mode; merge_and_unload must agree to 1e-5). Run from
anywhere: python scripts/reference/peft_interop/make_boft_fixtures.py
"""
import json
import os
import shutil

import torch
from transformers import LlamaForCausalLM

import peft
import peft.tuners.boft.layer as boft_layer
from peft import BOFTConfig, PeftModel, get_peft_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BASE = os.path.join("src", "lib", "model", "fixtures", "tiny-llama")
OUT = os.path.join("src", "lib", "peft", "fixtures", "peft-0.21-llama")
INPUT_IDS = [[5, 17, 42, 7, 99, 3, 250, 12, 64, 8, 31, 77], [9, 1, 2, 150, 33, 4, 18, 6, 200, 45, 11, 27]]


class BlockDiagStub:
    """fbd_cuda's two entry points in plain torch: [N, D, H, H] -> [N, D*H, D*H], and back."""

    @staticmethod
    def forward(x):
        return [torch.stack([torch.block_diag(*torch.unbind(f)) for f in x])]

    @staticmethod
    def backward(grad, x):
        n, d, h, _ = x.shape
        blocks = [grad[:, i * h : (i + 1) * h, i * h : (i + 1) * h] for i in range(d)]
        return [torch.stack(blocks, 1)]


CASES = {
    "boft": (None, BOFTConfig(task_type="CAUSAL_LM", boft_block_size=4, target_modules=["q_proj", "v_proj", "down_proj"])),
    "boft_butterfly": (
        BlockDiagStub,
        BOFTConfig(task_type="CAUSAL_LM", boft_block_size=4, boft_n_butterfly_factor=2, target_modules=["q_proj", "down_proj"]),
    ),
    "boft_block_num": (
        BlockDiagStub,
        BOFTConfig(
            task_type="CAUSAL_LM",
            boft_block_size=0,
            boft_block_num=4,
            boft_n_butterfly_factor=3,
            target_modules=["q_proj", "k_proj", "o_proj"],
        ),
    ),
}


def base():
    return LlamaForCausalLM.from_pretrained(BASE, attn_implementation="eager").eval()


def logits(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor(INPUT_IDS)).logits.float()


def make(name, fbd, config, seed):
    # None: what get_fbd_cuda returns where the CUDA extension does not build (without the minutes
    # of trying to build it).
    boft_layer.get_fbd_cuda = lambda: fbd
    torch.manual_seed(seed)
    plain = logits(base())
    model = get_peft_model(base(), config)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "boft_R" in n:
                p.copy_(0.1 * torch.randn_like(p))
            if "boft_s" in n:
                p.copy_(1 + 0.1 * torch.randn_like(p))
    model.eval()
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
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
                "block_diag": "PEFT's CPU path (factor 1)" if fbd is None else "fbd_cuda stand-in (torch.block_diag)",
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
    for i, (name, (fbd, config)) in enumerate(CASES.items()):
        make(name, fbd, config, 300 + i)


if __name__ == "__main__":
    main()
