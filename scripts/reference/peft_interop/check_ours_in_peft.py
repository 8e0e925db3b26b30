#!/usr/bin/env python3
"""Adapters PEFT Lab wrote, loaded with Python PEFT: do they load, and give our logits?

For each adapter folder (made by `npx peft-lab train ... --out DIR`, with `ours.json` beside it from
our_logits.ts), this loads the base model with transformers (AutoModelForCausalLM: GPT-2 or the
Llama family, or
GPT2ForSequenceClassification / GPT2ForTokenClassification with num_labels read from the saved
head), then the adapter with `PeftModel.from_pretrained`, runs the same input in eval mode and
prints one row per folder: loads?, max |PEFT - ours| over the real tokens' logits, how far the
adapter moves the logits from the base model's (CAUSAL_LM only, so a near-zero adapter shows), and
every warning PEFT gave while loading.

It also tries PEFT's own Auto class (AutoPeftModelForCausalLM / ...ForSequenceClassification /
...ForTokenClassification), which finds the base model through base_model_name_or_path: the script
runs it from the base model's parent folder, so "peftlab-s" resolves to public/models/peftlab-s.

FULL (our full fine-tuning) has no PEFT type: its file is checked as a plain transformers
checkpoint instead (config.json of the base + the saved tensors as model.safetensors).

    /tmp/pv/bin/python scripts/reference/peft_interop/check_ours_in_peft.py \\
        --model public/models/peftlab-s /tmp/peft-interop/*/
"""
import argparse
import json
import os
import shutil
import tempfile
import warnings

import torch
import transformers
from safetensors import safe_open
from transformers import (
    AutoModelForCausalLM,
    GPT2ForSequenceClassification,
    GPT2ForTokenClassification,
)

import peft
from peft import (
    AutoPeftModelForCausalLM,
    AutoPeftModelForSequenceClassification,
    AutoPeftModelForTokenClassification,
    PeftModel,
)

BASE_CLASS = {
    # The Auto class reads config.json, so Llama-family folders check too.
    "CAUSAL_LM": AutoModelForCausalLM,
    "SEQ_CLS": GPT2ForSequenceClassification,
    "TOKEN_CLS": GPT2ForTokenClassification,
}
AUTO_CLASS = {
    "CAUSAL_LM": AutoPeftModelForCausalLM,
    "SEQ_CLS": AutoPeftModelForSequenceClassification,
    "TOKEN_CLS": AutoPeftModelForTokenClassification,
}


def num_labels_of(adapter_dir):
    with safe_open(os.path.join(adapter_dir, "adapter_model.safetensors"), "pt") as f:
        for k in f.keys():
            if k.endswith("score.weight") or k.endswith("classifier.weight"):
                return f.get_slice(k).get_shape()[0]
    return None


def real_logits(model, ids):
    """Logits for the real tokens: PEFT's prompt tuning / P-tuning also return the virtual positions."""
    with torch.no_grad():
        out = model(input_ids=ids).logits
    if out.dim() == 3 and out.shape[1] > ids.shape[1]:
        out = out[:, -ids.shape[1]:]
    return out


def short(w):
    return f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}"


def check_full(model_dir, adapter_dir, ids, ours, task):
    """FULL: the saved tensors as a plain transformers checkpoint of the base's config."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(model_dir, "config.json"), tmp)
        shutil.copy(os.path.join(adapter_dir, "adapter_model.safetensors"), os.path.join(tmp, "model.safetensors"))
        kwargs = {"num_labels": num_labels_of(adapter_dir)} if task != "CAUSAL_LM" else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m, info = BASE_CLASS[task].from_pretrained(tmp, output_loading_info=True, **kwargs)
        m.eval()
        missing = [k for k in info["missing_keys"] if k != "lm_head.weight"]  # tied to wte
        notes = [short(w) for w in caught]
        if missing or info["unexpected_keys"] or info["mismatched_keys"]:
            notes.append(f"loading info: {info}")
        out = real_logits(m, ids)
    return out, notes


def check(model_dir, adapter_dir, ids_override):
    cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    ours = json.load(open(os.path.join(adapter_dir, "ours.json")))
    task = cfg.get("task_type") or "CAUSAL_LM"
    ids = torch.tensor(ours["input_ids"] if ids_override is None else ids_override)
    row = {"case": os.path.basename(os.path.normpath(adapter_dir)), "type": f"{cfg['peft_type']}/{task}"}
    ours_t = torch.tensor(ours["logits"]).reshape(ours["shape"])

    if cfg["peft_type"] == "FULL":
        try:
            out, notes = check_full(model_dir, adapter_dir, ids, ours, task)
            row.update(loads="n/a in PEFT; loads in transformers", notes=notes)
            row["diff"] = float((out - ours_t).abs().max()) if list(out.shape) == ours["shape"] else "shape"
        except Exception as e:  # noqa: BLE001 - report whatever transformers says
            row.update(loads=f"NO: {type(e).__name__}: {e}", diff=None, notes=[])
        return row

    kwargs = {"num_labels": num_labels_of(adapter_dir)} if task != "CAUSAL_LM" else {}
    base = BASE_CLASS[task].from_pretrained(model_dir, **kwargs).eval()
    plain = real_logits(base, ids) if task == "CAUSAL_LM" else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = PeftModel.from_pretrained(base, adapter_dir).eval()
        except Exception as e:  # noqa: BLE001 - the point is to report what PEFT says
            row.update(loads=f"NO: {type(e).__name__}: {e}", diff=None, notes=[short(w) for w in caught])
            return row
    row["notes"] = [short(w) for w in caught]
    out = real_logits(model, ids)
    row["loads"] = "yes"
    if list(out.shape) != ours["shape"]:
        row["diff"] = f"shape PEFT {list(out.shape)} vs ours {ours['shape']}"
    else:
        row["diff"] = float((out - ours_t).abs().max())
    if plain is not None:
        row["effect"] = float((out - plain).abs().max())

    # PEFT's Auto class, which finds the base through base_model_name_or_path.
    here = os.getcwd()
    try:
        os.chdir(os.path.dirname(os.path.abspath(model_dir)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auto = AUTO_CLASS[task].from_pretrained(os.path.join(here, adapter_dir), **kwargs).eval()
        a = real_logits(auto, ids)
        row["auto"] = f"yes, diff {float((a - ours_t).abs().max()):.1e}" if list(a.shape) == ours["shape"] else "shape"
    except Exception as e:  # noqa: BLE001
        row["auto"] = f"NO: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    finally:
        os.chdir(here)
    return row


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="base model folder (config.json, model.safetensors)")
    p.add_argument("adapters", nargs="+")
    a = p.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    print(f"peft {peft.__version__}, transformers {transformers.__version__}, torch {torch.__version__}")
    rows = [check(a.model, d, None) for d in a.adapters]
    print(f"\n| case | type | loads in PEFT? | max abs diff vs ours | adapter effect | AutoPeftModel |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        d = r.get("diff")
        d = f"{d:.2e}" if isinstance(d, float) else str(d)
        e = r.get("effect")
        e = f"{e:.3f}" if isinstance(e, float) else "-"
        print(f"| {r['case']} | {r['type']} | {r['loads']} | {d} | {e} | {r.get('auto', '-')} |")
    print("\nWarnings while loading:")
    for r in rows:
        for n in dict.fromkeys(r.get("notes", [])):
            print(f"  {r['case']}: {n}")
    bad = [r["case"] for r in rows if not (isinstance(r.get("diff"), float) and r["diff"] < 1e-4)]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} within 1e-4" + (f"; not: {', '.join(bad)}" if bad else ""))


if __name__ == "__main__":
    main()
