#!/usr/bin/env python3
"""Adapters written by Python PEFT, with the outputs PEFT computes from them.

For each case: the tiny GPT-2 fixture (src/lib/model/fixtures/tiny-gpt2) as an HF model, a PEFT
model on it with a fixed torch seed, every trainable adapter parameter set to NON-trivial random
values (PEFT's own inits make LoRA's B and AdaLoRA's E zero and IA3's vectors one, which would let
a loader that ignores them pass), one fixed input run in eval mode, then

    src/lib/peft/fixtures/peft-0.21/<case>/adapter_config.json        save_pretrained, as written
    src/lib/peft/fixtures/peft-0.21/<case>/adapter_model.safetensors  save_pretrained, as written
    src/lib/peft/fixtures/peft-0.21/<case>/expected.json              input ids + PEFT's logits

The saved folder is also reloaded with PeftModel.from_pretrained on a fresh base and must give the
same logits (a P-tuning file holds the encoder's output, a prefix file the projection's output, an
AdaLoRA file reduced-rank tensors: this proves the fixture is what PEFT itself reads back).

Needs torch, transformers and peft (checked with peft 0.21.0, torch 2.13 cpu, transformers 5.18):

    /tmp/pv/bin/python scripts/reference/peft_interop/make_fixtures.py [case ...]

Deterministic for a given torch build. At the end it runs `npx prettier --write` on the folder
(whitespace only: the repo's lint checks every JSON file that .prettierignore does not list).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import GPT2ForSequenceClassification, GPT2ForTokenClassification, GPT2LMHeadModel

import peft
from peft import (
    AdaLoraConfig,
    IA3Config,
    LNTuningConfig,
    VeraConfig,
    LoraConfig,
    PeftModel,
    PrefixTuningConfig,
    PromptEncoderConfig,
    PromptTuningConfig,
    get_peft_model,
)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
# Relative to ROOT (the script chdirs there), so base_model_name_or_path in the files names no machine.
BASE = "src/lib/model/fixtures/tiny-gpt2"
OUT = os.path.join(ROOT, "src", "lib", "peft", "fixtures", "peft-0.21")
INPUT_IDS = [[1, 8, 4, 0, 7, 3, 12, 5]]
STD = 0.2
N = 4  # virtual tokens


def lora():
    return LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["c_attn", "mlp.c_fc"])


def lora_dora():
    return LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["c_attn", "mlp.c_fc"], use_dora=True
    )


def lora_pissa():
    return LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["c_attn", "mlp.c_fc"], init_lora_weights="pissa"
    )


def lora_pissa_converted():
    return lora_pissa()


def lora_seq_cls():
    return LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["c_attn", "mlp.c_fc"])


def adalora():
    return AdaLoraConfig(
        task_type="CAUSAL_LM",
        init_r=4,
        target_r=2,
        total_step=10,
        target_modules=["c_attn", "mlp.c_fc"],
    )


def ln_tuning():
    return LNTuningConfig(task_type="CAUSAL_LM")  # GPT-2 defaults: ln_1, ln_2, ln_f


def ln_tuning_seq_cls():
    return LNTuningConfig(task_type="SEQ_CLS")


def vera():
    # c_attn and mlp.c_fc have different widths (48, 64): the shared projections are sliced.
    return VeraConfig(task_type="CAUSAL_LM", r=4, target_modules=["c_attn", "mlp.c_fc"], projection_prng_key=7)


def ia3():
    return IA3Config(task_type="CAUSAL_LM")  # GPT-2 defaults: c_attn + mlp.c_proj, mlp.c_proj feed-forward


def prompt_tuning():
    return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N, prompt_tuning_init="RANDOM")


def prompt_tuning_token_cls():
    return PromptTuningConfig(task_type="TOKEN_CLS", num_virtual_tokens=N, prompt_tuning_init="RANDOM")


def p_tuning_mlp():
    return PromptEncoderConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=N, encoder_hidden_size=8, encoder_reparameterization_type="MLP"
    )


def p_tuning_lstm():
    return PromptEncoderConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=N, encoder_hidden_size=8, encoder_reparameterization_type="LSTM"
    )


def prefix_tuning():
    return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N)


def prefix_tuning_projection():
    return PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=N, prefix_projection=True, encoder_hidden_size=8
    )


def prefix_tuning_seq_cls():
    return PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=N)


# case -> (config factory, num_labels or None)
CASES = {
    "lora": (lora, None),
    "lora_seq_cls": (lora_seq_cls, 3),
    "lora_dora": (lora_dora, None),
    # PiSSA saved as PEFT saves it by default (A, B over the residual base, init_lora_weights
    # "pissa": a loader must recompute the start from the original base) and converted to plain
    # LoRA (path_initial_model_for_weight_conversion: rank 2r over the original base).
    "lora_pissa": (lora_pissa, None),
    "lora_pissa_converted": (lora_pissa_converted, None),
    "adalora": (adalora, None),
    "ia3": (ia3, None),
    "vera": (vera, None),
    "ln_tuning": (ln_tuning, None),
    "ln_tuning_seq_cls": (ln_tuning_seq_cls, 2),
    "prompt_tuning": (prompt_tuning, None),
    "prompt_tuning_token_cls": (prompt_tuning_token_cls, 3),
    "p_tuning_mlp": (p_tuning_mlp, None),
    "p_tuning_lstm": (p_tuning_lstm, None),
    "prefix_tuning": (prefix_tuning, None),
    "prefix_tuning_projection": (prefix_tuning_projection, None),
    "prefix_tuning_seq_cls": (prefix_tuning_seq_cls, 2),
}


def base_model(task, num_labels):
    if task == "SEQ_CLS":
        m = GPT2ForSequenceClassification.from_pretrained(BASE, num_labels=num_labels)
    elif task == "TOKEN_CLS":
        m = GPT2ForTokenClassification.from_pretrained(BASE, num_labels=num_labels)
    else:
        m = GPT2LMHeadModel.from_pretrained(BASE)
    return m.eval()


def randomize(model):
    """Non-trivial values for every trainable parameter (IA3 scales around 1, the rest around 0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if "lora_magnitude_vector" in name:
                # DoRA's magnitudes start at the column norms of W: move them by +-20% around those.
                p.mul_(1.0 + STD * torch.randn_like(p))
                continue
            # Scales (IA3's, LayerNorm gains) around 1, the rest around 0.
            scale = "ia3_l" in name or ("ln_tuning_layers" in name and name.endswith(".weight"))
            mean = 1.0 if scale else 0.0
            torch.nn.init.normal_(p, mean=mean, std=STD)


def adalora_allocate(model, cfg):
    """PEFT's own rank allocation: training steps with real gradients, update_and_allocate after each.

    Steps 1..total_step-1 update the importance scores (and mask to a shrinking budget); step
    total_step (= total_step - tfinal) masks to the target budget and fixes config.rank_pattern.
    """
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, 97, (4, 12), generator=g)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    for step in range(1, cfg.total_step + 1):
        loss = model(input_ids=x, labels=x).loss  # includes AdaLoRA's orthogonal regulariser
        loss.backward()
        opt.step()
        model.base_model.update_and_allocate(step)
        opt.zero_grad()
    model.eval()
    pattern = model.peft_config["default"].rank_pattern
    kept = {k: sum(v) for k, v in pattern.items()}
    assert all(0 < r for r in kept.values()), f"a layer lost every rank: {kept}"
    assert any(r < cfg.init_r for r in kept.values()), f"no rank was cut: {kept}"
    return kept


def logits_of(model, task, n_virtual):
    """PEFT's logits for INPUT_IDS, and the real-token part of them (what PEFT Lab computes)."""
    ids = torch.tensor(INPUT_IDS)
    with torch.no_grad():
        out = model(input_ids=ids).logits
    T = ids.shape[1]
    real = out
    if task in ("CAUSAL_LM", "TOKEN_CLS") and out.shape[1] == T + n_virtual and n_virtual > 0:
        real = out[:, -T:]  # prompt tuning / P-tuning prepend the virtual positions
    return out, real


def make(case):
    factory, num_labels = CASES[case]
    cfg = factory()
    task = str(cfg.task_type.value if hasattr(cfg.task_type, "value") else cfg.task_type)
    torch.manual_seed(0)
    model = get_peft_model(base_model(task, num_labels), cfg)
    initial = None
    if case.endswith("_converted"):
        # PEFT's recipe: save the adapter as initialised (marked as a plain init) before training.
        initial = os.path.join(tempfile.mkdtemp(), "initial")  # its folder name becomes an adapter name
        model.peft_config["default"].init_lora_weights = True
        model.save_pretrained(initial)
        model.peft_config["default"].init_lora_weights = cfg.init_lora_weights
    randomize(model)
    extra = {}
    if case == "adalora":
        extra["kept_ranks"] = adalora_allocate(model, model.peft_config["default"])
    model.eval()

    prompt_learning = model.peft_config["default"].is_prompt_learning
    n_virtual = N if prompt_learning and cfg.peft_type.value in ("PROMPT_TUNING", "P_TUNING") else 0
    out, real = logits_of(model, task, n_virtual)
    if prompt_learning:
        # PeftModel.base_model is the HF model here (heads from modules_to_save still active):
        # the prompt's own effect. (disable_adapter() fails on PeftModelForTokenClassification with
        # prompt learning in peft 0.21: it reads prepare_inputs_for_generation, which GPT-2's token
        # classifier lacks.)
        _, plain = logits_of(model.base_model, task, 0)
    else:
        with model.disable_adapter():
            _, plain = logits_of(model, task, 0)
    if plain.shape == real.shape:
        extra["adapter_effect_max_abs"] = float((real - plain).abs().max())

    folder = os.path.join(OUT, case)
    os.makedirs(folder, exist_ok=True)
    if initial:
        model.save_pretrained(folder, path_initial_model_for_weight_conversion=initial)
        shutil.rmtree(os.path.dirname(initial))
    else:
        model.save_pretrained(folder)
    os.remove(os.path.join(folder, "README.md"))  # the generated model card: not needed

    # PEFT reads its own files back to the same outputs.
    torch.manual_seed(1)
    reloaded = PeftModel.from_pretrained(base_model(task, num_labels), folder).eval()
    _, again = logits_of(reloaded, task, n_virtual)
    reload_diff = float((again - real).abs().max())
    assert reload_diff < 1e-5, f"{case}: PEFT's reload differs by {reload_diff}"

    expected = {
        "case": case,
        "peft_type": cfg.peft_type.value,
        "task_type": task,
        "num_labels": num_labels,
        "made_with": {
            "peft": peft.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "input_ids": INPUT_IDS,
        "peft_logits_shape": list(out.shape),
        "leading_positions_dropped": out.shape[1] - real.shape[1] if out.dim() == 3 else 0,
        "note": (
            "logits are PEFT's for the real tokens only: for prompt tuning / P-tuning PEFT's CAUSAL_LM "
            "and TOKEN_CLS logits also cover the leading virtual positions, which are dropped here"
        ),
        "shape": list(real.shape),
        "logits": [float(f"{v:.8g}") for v in real.flatten().tolist()],
        "peft_reload_max_abs_diff": reload_diff,
        **extra,
    }
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    sizes = {n: os.path.getsize(os.path.join(folder, n)) for n in sorted(os.listdir(folder))}
    print(f"{case:28s} shape {list(real.shape)} effect {extra.get('adapter_effect_max_abs', float('nan')):.3f} "
          f"reload {reload_diff:.1e} files {sizes} {extra.get('kept_ranks', '')}")


def main():
    os.chdir(ROOT)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    cases = sys.argv[1:] or list(CASES)
    for c in cases:
        make(c)
    subprocess.run(["npx", "prettier", "--write", "--log-level", "warn", OUT], check=True)


if __name__ == "__main__":
    main()
