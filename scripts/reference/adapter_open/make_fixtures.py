#!/usr/bin/env python3
"""PEFT adapters on the Lab's default base model, for opening in the app, with PEFT's answers.

The Lab loads public/models/peftlab-s first (public/models/index.json). For each case a PEFT 0.21
model is built on it with a fixed torch seed, every trainable adapter parameter is set to NON-zero
random values (PEFT's LoRA init makes B zero, which would let an opener that ignores the weights
pass), and PEFT's own outputs are recorded:

    src/lib/peft/fixtures/peft-0.21-open/<case>/adapter_config.json        save_pretrained, as written
    src/lib/peft/fixtures/peft-0.21-open/<case>/adapter_model.safetensors  save_pretrained, as written
    src/lib/peft/fixtures/peft-0.21-open/<case>/expected.json              prompt, greedy tokens, logits

Cases: `lora` and `prompt_tuning` on peftlab-s (they must open and answer as PEFT does), and
`lora_other_base`: a LoRA made on a different GPT-2 (64 wide, 2 layers, named tiny-gpt2-64), which
the app must refuse on peftlab-s with a named error (its tensors do not fit).

The base is loaded as the relative path "peftlab-s" (the script chdirs to public/models), so
base_model_name_or_path in the files is the bundled model's id, as if the adapter had been trained
on a copy of it in Python: the app uses that name to pick the base.

    /work/venv/bin/python scripts/reference/adapter_open/make_fixtures.py
"""
import json
import os
import subprocess
import tempfile

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

import peft
from peft import LoraConfig, PeftModel, PromptTuningConfig, get_peft_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
MODELS = os.path.join(ROOT, "public", "models")
OUT = os.path.join(ROOT, "src", "lib", "peft", "fixtures", "peft-0.21-open")
# The Lab's Try-it box starts with this prompt and 40 new tokens, greedy (temperature 0).
PROMPT = "Call me Ishmael. Some years ago"
MAX_NEW_TOKENS = 40
# A short input for logits (all positions, all of the 2048-token vocabulary).
LOGIT_IDS = [[5, 300, 17, 1000]]
# Large enough that the answer visibly differs from the base's, small enough that it stays text.
STD = 0.05


def randomize(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                torch.nn.init.normal_(p, mean=0.0, std=STD)


def make(case, base_name, cfg, seed, record=True):
    torch.manual_seed(seed)
    base = GPT2LMHeadModel.from_pretrained(base_name)
    model = get_peft_model(base, cfg)
    randomize(model, seed + 1)
    model.eval()
    folder = os.path.join(OUT, case)
    model.save_pretrained(folder)
    # save_pretrained also writes a model-card template; the fixture is the two files PEFT reads.
    os.remove(os.path.join(folder, "README.md"))
    if not record:
        return
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(MODELS, base_name, "tokenizer.json"))
    prompt_ids = tok(PROMPT)["input_ids"]
    n_virtual = cfg.num_virtual_tokens if isinstance(cfg, PromptTuningConfig) else 0
    with torch.no_grad():
        ids = torch.tensor(LOGIT_IDS)
        logits = model(input_ids=ids).logits[:, n_virtual:, :]
        gen = model.generate(
            input_ids=torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            eos_token_id=base.config.eos_token_id,
            pad_token_id=base.config.eos_token_id,
        )
    new_ids = gen[0, len(prompt_ids):].tolist()
    # The folder read back by PEFT itself gives the same logits: the files are what PEFT reads.
    again = PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(base_name), folder).eval()
    with torch.no_grad():
        back = again(input_ids=ids).logits[:, n_virtual:, :]
    assert torch.allclose(back, logits, atol=1e-6), f"{case}: reloaded logits differ"
    expected = {
        "case": case,
        "base_model": base_name,
        "made_with": {"peft": peft.__version__, "torch": torch.__version__, "transformers": transformers.__version__},
        "prompt": PROMPT,
        "prompt_ids": prompt_ids,
        "max_new_tokens": MAX_NEW_TOKENS,
        "greedy_ids": new_ids,
        "greedy_text": tok.decode(new_ids),
        "logit_ids": LOGIT_IDS,
        "logits_shape": list(logits.shape),
        "note": "logits cover the real tokens only (prompt tuning's leading virtual positions are dropped)",
        "logits": [float(f"{v:.8g}") for v in logits.flatten().tolist()],
    }
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


def main():
    os.makedirs(OUT, exist_ok=True)
    os.chdir(MODELS)
    make("lora", "peftlab-s", LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8,
                                         target_modules=["c_attn", "c_fc"]), 10)
    make("prompt_tuning", "peftlab-s", PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4,
                                                          prompt_tuning_init="RANDOM"), 20)
    # Another GPT-2 (64 wide): same module names, other shapes. Made in a scratch folder so its
    # base_model_name_or_path is a bare name no machine owns.
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        torch.manual_seed(30)
        GPT2LMHeadModel(GPT2Config(vocab_size=2048, n_positions=64, n_embd=64, n_layer=2, n_head=2,
                                   bos_token_id=2047, eos_token_id=2047)).save_pretrained(
            "tiny-gpt2-64")
        make("lora_other_base", "tiny-gpt2-64", LoraConfig(task_type="CAUSAL_LM", r=2, lora_alpha=4,
                                                            target_modules=["c_attn"]), 31, record=False)
        os.chdir(ROOT)
    subprocess.run(["npx", "prettier", "--write", "--log-level", "warn", OUT], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
