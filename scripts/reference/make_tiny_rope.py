#!/usr/bin/env python3
"""Tiny random checkpoints written by HF transformers with the rope scaling types beyond llama3/linear.

As make_tiny_llama.py (same tokenizer, the same random-weight recipe, its helpers imported), one case
per rotary scaling type of transformers' ROPE_INIT_FUNCTIONS that a Llama-family config can carry:

    src/lib/model/fixtures/tiny-qwen2-yarn/      Qwen2ForCausalLM, rope yarn (as Qwen2.5's long-context
                                                 configs): factor 4, original_max_position_embeddings 32,
                                                 rope_theta 100 and head_dim 16 so the ramp between
                                                 interpolated and extrapolated frequencies spans dims 0..3;
                                                 attention factor from the factor (0.1 ln 4 + 1)
    src/lib/model/fixtures/tiny-llama-dynamic/   LlamaForCausalLM, rope dynamic (NTK), factor 4,
                                                 max_position_embeddings 16: the base grows with the
                                                 sequence once it passes 16 positions
    src/lib/model/fixtures/tiny-llama-longrope/  LlamaForCausalLM, rope longrope: short factors up to
                                                 original_max_position_embeddings 16, long ones beyond,
                                                 attention factor sqrt(1 + ln 4 / ln 16)

expected.json holds what make_tiny_llama.py's does (logits of two 12-token rows, the greedy tokens of
`model.generate(do_sample=False)` after a 5-token prompt) and `long_input_ids` / `long_logits`: one
40-token row, past max_position_embeddings (dynamic) or original_max_position_embeddings (longrope,
yarn), so the length-dependent frequencies show. The greedy run is 40 new tokens, so generation goes
on past those lengths with the KV cache, as transformers' generate does (each new token's frequencies
from its own position; the cached keys keep theirs).

    /work/venv/bin/python scripts/reference/make_tiny_rope.py
"""
import json
import os
import shutil
import subprocess

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from make_tiny_llama import FIXTURES, INPUT_IDS, PROMPT, ROOT, VOCAB, byte_level_tokenizer, common, random_model

NEW_TOKENS = 40
LONG_IDS = [[(7 * i + 3) % VOCAB for i in range(40)]]


def write(name, cls, config, seed, tok):
    out = os.path.relpath(os.path.join(FIXTURES, name), ROOT)
    shutil.rmtree(out, ignore_errors=True)
    random_model(cls, config, seed).save_pretrained(out, safe_serialization=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    gc = os.path.join(out, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)

    def load():
        return AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()

    with torch.no_grad():
        logits = load()(input_ids=torch.tensor(INPUT_IDS)).logits.float()
        # Fresh models for each: dynamic NTK keeps the longest length seen as state between calls.
        long_logits = load()(input_ids=torch.tensor(LONG_IDS)).logits.float()
        gen = load().generate(
            torch.tensor([PROMPT]),
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            pad_token_id=0,
        )
    r6 = lambda t: [[[round(float(v), 6) for v in row] for row in seq] for seq in t]  # noqa: E731
    exp = {
        "input_ids": INPUT_IDS,
        "logits": r6(logits),
        "prompt": PROMPT,
        "greedy": gen[0, len(PROMPT):].tolist(),
        "long_input_ids": LONG_IDS,
        "long_logits": r6(long_logits),
        "rope_parameters": load().config.rope_parameters,
        "made_by": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}",
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f)
    print(name, "greedy", exp["greedy"])
    return out


def main():
    os.chdir(ROOT)
    torch.set_num_threads(1)
    bl = byte_level_tokenizer()
    write(
        "tiny-qwen2-yarn",
        Qwen2ForCausalLM,
        common(
            Qwen2Config,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=128,
            tie_word_embeddings=True,
            rope_theta=100.0,
            rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
        ),
        11,
        bl,
    )
    write(
        "tiny-llama-dynamic",
        LlamaForCausalLM,
        common(
            LlamaConfig,
            max_position_embeddings=16,
            tie_word_embeddings=False,
            rope_theta=10000.0,
            rope_scaling={"rope_type": "dynamic", "factor": 4.0},
        ),
        12,
        bl,
    )
    write(
        "tiny-llama-longrope",
        LlamaForCausalLM,
        common(
            LlamaConfig,
            max_position_embeddings=64,
            tie_word_embeddings=False,
            rope_theta=10000.0,
            rope_scaling={
                "rope_type": "longrope",
                "short_factor": [1.0, 1.2, 1.5, 2.0],
                "long_factor": [1.0, 2.0, 4.0, 8.0],
                "original_max_position_embeddings": 16,
            },
        ),
        13,
        bl,
    )
    subprocess.run(["npx", "prettier", "--write", "--log-level", "warn", FIXTURES], check=False)


if __name__ == "__main__":
    main()
