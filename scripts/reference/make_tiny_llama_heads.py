#!/usr/bin/env python3
"""transformers' own SEQ_CLS and TOKEN_CLS heads on tiny-llama, with their logits.

Reads src/lib/model/fixtures/tiny-llama (written by make_tiny_llama.py) into
LlamaForSequenceClassification (score: Linear(hidden, 3, bias=False), pooled at each row's rightmost
non-pad token) and LlamaForTokenClassification (score: Linear(hidden, 4) with bias; its dropout is
off in eval), gives each head random weights under a fixed seed, and writes

    src/lib/model/fixtures/tiny-llama-heads/heads.safetensors   seq_cls.score.weight,
                                                                token_cls.score.weight, token_cls.score.bias
    src/lib/model/fixtures/tiny-llama-heads/expected.json       input ids (right-padded with pad 0),
                                                                attention mask, both models' logits

    /work/venv/bin/python scripts/reference/make_tiny_llama_heads.py

Needs torch, transformers, safetensors (checked with torch 2.13 cpu, transformers 5.18).
"""
import json
import os
import subprocess

import torch
from safetensors.torch import save_file
from transformers import LlamaForSequenceClassification, LlamaForTokenClassification

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BASE = os.path.join(ROOT, "src", "lib", "model", "fixtures", "tiny-llama")
OUT = os.path.join(ROOT, "src", "lib", "model", "fixtures", "tiny-llama-heads")
PAD = 0
# Right-padded as PEFT Lab pads; one row without padding. No real token is the pad id.
ROWS = [[5, 17, 42, 7, 99, 3, 250, 12], [9, 150, 33, 4, 18], [31, 77, 2]]


def load(cls, num_labels, seed):
    model = cls.from_pretrained(
        BASE, num_labels=num_labels, pad_token_id=PAD, attn_implementation="eager", dtype=torch.float32
    ).eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        # HF's init (N(0, 0.02), zero bias) is too flat for a sharp test.
        model.score.weight.copy_(0.5 * torch.randn_like(model.score.weight))
        if model.score.bias is not None:
            model.score.bias.copy_(0.5 * torch.randn_like(model.score.bias))
    return model


def main():
    T = max(len(r) for r in ROWS)
    ids = torch.tensor([r + [PAD] * (T - len(r)) for r in ROWS])
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in ROWS])
    seq = load(LlamaForSequenceClassification, 3, 11)
    tok = load(LlamaForTokenClassification, 4, 12)
    assert seq.score.bias is None and tok.score.bias is not None
    with torch.no_grad():
        seq_logits = seq(input_ids=ids, attention_mask=mask).logits.float()  # [B, 3]
        tok_logits = tok(input_ids=ids, attention_mask=mask).logits.float()  # [B, T, 4]
    os.makedirs(OUT, exist_ok=True)
    save_file(
        {
            "seq_cls.score.weight": seq.score.weight.detach().contiguous(),
            "token_cls.score.weight": tok.score.weight.detach().contiguous(),
            "token_cls.score.bias": tok.score.bias.detach().contiguous(),
        },
        os.path.join(OUT, "heads.safetensors"),
    )
    r = lambda t: [round(float(v), 6) for v in t]
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(
            {
                "input_ids": ids.tolist(),
                "attention_mask": mask.tolist(),
                "pad_token_id": PAD,
                "seq_cls_logits": [r(row) for row in seq_logits],
                "token_cls_logits": [[r(t) for t in row] for row in tok_logits],
                "made_by": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}",
            },
            f,
        )
    subprocess.run(["npx", "prettier", "--write", os.path.join(OUT, "expected.json")], cwd=ROOT, check=True)
    print("seq", seq_logits.tolist())


if __name__ == "__main__":
    main()
