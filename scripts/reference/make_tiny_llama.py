#!/usr/bin/env python3
"""Tiny random Llama-family checkpoints written by HF transformers itself, with its outputs.

Each case is a random model built from a config with `<Arch>ForCausalLM(config)` under a fixed torch
seed, saved with `save_pretrained(safe_serialization=True)` next to a tiny tokenizer.json trained
with the `tokenizers` library, and an expected.json holding transformers' own logits for a fixed
input (eager attention, float32) and the greedy tokens of `model.generate(do_sample=False)`:

    src/lib/model/fixtures/tiny-llama/         LlamaForCausalLM, GQA 4/2, rope_scaling llama3, untied lm_head
    src/lib/model/fixtures/tiny-qwen2/         Qwen2ForCausalLM, q/k/v bias, tied head
    src/lib/model/fixtures/tiny-mistral/       MistralForCausalLM, sliding_window 6 < the test sequence,
                                               SentencePiece-style tokenizer (Metaspace, byte_fallback)
    src/lib/model/fixtures/tiny-llama-bf16/    the llama case saved in bfloat16 (reference: the folder read
                                               back by transformers in float32)
    src/lib/model/fixtures/tiny-qwen2-sharded/ the qwen2 case in shards + model.safetensors.index.json,
                                               rope_scaling linear

and, for the llama case, a LoRA adapter made by PEFT 0.21 with PEFT's default target modules for
llama (q_proj, v_proj) and non-zero B, with PEFT's logits for the same input:

    src/lib/peft/fixtures/peft-0.21-llama/lora/

    /work/venv/bin/python scripts/reference/make_tiny_llama.py

Needs torch, transformers, tokenizers, peft (checked with torch 2.13 cpu, transformers 5.18,
tokenizers 0.23, peft 0.21). Deterministic for a given torch build. Runs `npx prettier --write`
on the JSON it writes (the repo's lint checks every JSON file).
"""
import json
import os
import shutil
import subprocess

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

import peft
from peft import LoraConfig, PeftModel, get_peft_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(ROOT, "src", "lib", "model", "fixtures")
PEFT_FIXTURES = os.path.join(ROOT, "src", "lib", "peft", "fixtures", "peft-0.21-llama")
VOCAB = 300
# Longer than mistral's sliding window (6), so the window changes the logits.
INPUT_IDS = [[5, 17, 42, 7, 99, 3, 250, 12, 64, 8, 31, 77], [9, 1, 2, 150, 33, 4, 18, 6, 200, 45, 11, 27]]
PROMPT = [5, 17, 42, 7, 99]
NEW_TOKENS = 12

TEXT = """The quick brown fox jumps over the lazy dog. A small model learns from little text.
Fine-tuning adapts a base model to a task; low-rank adapters train few parameters.
Rotary embeddings turn positions into angles, and grouped-query attention shares keys.
Les modèles de langue lisent aussi du français, et des chiffres: 0123456789.
""" * 20


def byte_level_tokenizer():
    """A byte-level BPE like Llama 3's, Qwen2's and SmolLM2's."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 3,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TEXT], trainer)
    return tok


def sentencepiece_tokenizer():
    """A SentencePiece-style BPE like Llama 2's and Mistral's: Metaspace, byte_fallback, <0xNN> tokens."""
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB + 40,
        special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens,
        show_progress=False,
    )
    tok.train_from_iterator([TEXT.replace(" ", "▁")], trainer)
    return tok


def common(cfg_cls, **extra):
    """The tiny shape every fixture shares; `extra` adds fields or overrides one (make_tiny_rope.py sets its own
    max_position_embeddings)."""
    base = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
    )
    base.update(extra)
    return cfg_cls(**base)


def random_model(cls, config, seed):
    torch.manual_seed(seed)
    model = cls(config).eval()
    # HF's init is N(0, 0.02) with unit norms: too flat for a sharp test. Larger weights and
    # non-unit norms make every piece (norm gains, biases, rotary, GQA) move the logits.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(0.25 * torch.randn_like(p))
    return model


def expected(model):
    ids = torch.tensor(INPUT_IDS)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
        gen = model.generate(
            torch.tensor([PROMPT]),
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            pad_token_id=0,
        )
    return {
        "input_ids": INPUT_IDS,
        "logits": [[[round(float(v), 6) for v in row] for row in seq] for seq in logits],
        "prompt": PROMPT,
        "greedy": gen[0, len(PROMPT):].tolist(),
        "made_by": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}",
    }


def write(name, model, tok, dtype=None, shard=None):
    # Relative to ROOT (main chdirs there), so base_model_name_or_path in the adapter names no machine.
    out = os.path.relpath(os.path.join(FIXTURES, name), ROOT)
    shutil.rmtree(out, ignore_errors=True)
    if dtype is not None:
        model = model.to(dtype)
    kwargs = {"safe_serialization": True}
    if shard:
        kwargs["max_shard_size"] = shard
    model.save_pretrained(out, **kwargs)
    tok.save(os.path.join(out, "tokenizer.json"))
    # generation_config.json is not read by PEFT Lab; drop it to keep the fixture to what we test.
    gc = os.path.join(out, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
    # The reference is the saved folder as transformers reads it back in float32 (so the bf16 case
    # is bf16 weights computed in float32, with the rotary table recomputed, not rounded).
    exp = expected(AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval())
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f)
    print(name, "greedy", exp["greedy"], "files", sorted(os.listdir(out)))
    return out


def lora_case(base_dir):
    """A PEFT LoRA adapter on tiny-llama with non-zero B, and PEFT's logits."""
    base = LlamaForCausalLM.from_pretrained(base_dir, attn_implementation="eager").eval()
    torch.manual_seed(7)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(0.2 * torch.randn_like(p))
    model.eval()
    out = os.path.join(PEFT_FIXTURES, "lora")
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(INPUT_IDS)).logits.float()
    # What PEFT itself reads back must give the same logits.
    fresh = LlamaForCausalLM.from_pretrained(base_dir, attn_implementation="eager").eval()
    again = PeftModel.from_pretrained(fresh, out).eval()
    with torch.no_grad():
        diff = (again(input_ids=torch.tensor(INPUT_IDS)).logits - logits).abs().max().item()
    assert diff < 1e-6, diff
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(
            {
                "input_ids": INPUT_IDS,
                "logits": [[[round(float(v), 6) for v in row] for row in seq] for seq in logits],
                "made_by": f"peft {peft.__version__}",
            },
            f,
        )
    print("peft-0.21-llama/lora target_modules", sorted(model.peft_config["default"].target_modules))


def main():
    os.chdir(ROOT)
    bl = byte_level_tokenizer()
    sp = sentencepiece_tokenizer()
    llama_cfg = common(
        LlamaConfig,
        tie_word_embeddings=False,
        rope_theta=10000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
    )
    llama = random_model(LlamaForCausalLM, llama_cfg, 1)
    llama_dir = write("tiny-llama", llama, bl)
    write("tiny-llama-bf16", random_model(LlamaForCausalLM, llama_cfg, 1), bl, dtype=torch.bfloat16)

    qwen_cfg = common(Qwen2Config, tie_word_embeddings=True, rope_theta=1000000.0)
    write("tiny-qwen2", random_model(Qwen2ForCausalLM, qwen_cfg, 2), bl)
    qwen_lin = common(
        Qwen2Config,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
    )
    write("tiny-qwen2-sharded", random_model(Qwen2ForCausalLM, qwen_lin, 3), bl, shard="40KB")

    mistral_cfg = MistralConfig(
        vocab_size=sp.get_vocab_size(),
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        sliding_window=6,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
    )
    write("tiny-mistral", random_model(MistralForCausalLM, mistral_cfg, 4), sp)

    lora_case(llama_dir)
    subprocess.run(["npx", "prettier", "--write", "--log-level", "warn", FIXTURES, PEFT_FIXTURES], check=False)


if __name__ == "__main__":
    main()
