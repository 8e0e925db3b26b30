#!/usr/bin/env python3
"""The Python half of ours-in-peft.test.ts (CI): adapters PEFT Lab wrote, loaded by Python PEFT.

One process for every case, so torch, transformers and peft are imported once. Reads a manifest
(JSON: {"model": BASE_DIR, "cases": [{"name", "dir", "task", "input_ids", "logits", "shape"}]})
and writes a JSON report, one entry per case:

  loads, error            PeftModel.from_pretrained on the task's transformers class
  diff                    max |PEFT - ours| over the real tokens' logits (eval mode)
  warnings                every Python warning and every peft/transformers log record at WARNING or
                          above raised while PeftModel.from_pretrained ran
  auto_diff, auto_error   AutoPeftModelFor... (finds the base through base_model_name_or_path)
  auto_warnings           what PEFT itself warned during the Auto load (the base model's own
                          "newly initialized score" notice from transformers is not PEFT's)
  peft_keys               the adapter_config.json keys PEFT's own save_pretrained writes for the
                          same config (get_peft_model on a fresh base, then save_pretrained)
  peft_own_warnings       what PEFT warns when it loads that folder of its own, so a warning PEFT
                          gives for its own files too (AdaLoRA's rank_pattern notice) is told apart

    python ours_in_peft.py MANIFEST.json REPORT.json
"""
import json
import logging
import os
import sys
import tempfile
import traceback
import warnings

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoModelForTokenClassification

import peft
from peft import (
    AutoPeftModelForCausalLM,
    AutoPeftModelForSequenceClassification,
    AutoPeftModelForTokenClassification,
    PeftConfig,
    PeftModel,
    get_peft_model,
)

BASE_CLASS = {
    "CAUSAL_LM": AutoModelForCausalLM,
    "SEQ_CLS": AutoModelForSequenceClassification,
    "TOKEN_CLS": AutoModelForTokenClassification,
}
AUTO_CLASS = {
    "CAUSAL_LM": AutoPeftModelForCausalLM,
    "SEQ_CLS": AutoPeftModelForSequenceClassification,
    "TOKEN_CLS": AutoPeftModelForTokenClassification,
}


class Records(logging.Handler):
    """Collects log records at WARNING or above from the loggers it is attached to."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(f"log {record.name} {record.levelname}: {record.getMessage()}")


class Capture:
    """Python warnings and peft/transformers log records while the block runs."""

    def __init__(self, only_peft=False):
        self.only_peft = only_peft
        self.lines = []

    def __enter__(self):
        self.handler = Records()
        self.loggers = [logging.getLogger("peft"), logging.getLogger("transformers")]
        for lg in self.loggers:
            lg.addHandler(self.handler)
        transformers.logging.set_verbosity_warning()
        self.caught = warnings.catch_warnings(record=True)
        self.list = self.caught.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self.caught.__exit__(*exc)
        transformers.logging.set_verbosity_error()
        for lg in self.loggers:
            lg.removeHandler(self.handler)
        peft_dir = os.path.dirname(peft.__file__)
        for w in self.list:
            if self.only_peft and not w.filename.startswith(peft_dir):
                continue
            msg = str(w.message).splitlines()[0][:300]
            # BOFT's CUDA kernel (peft/tuners/boft/layer.py, get_fbd_cuda) is tried for every BOFT
            # layer PEFT builds, ours or its own, and the failure's detail differs between the first
            # try in a process (no CUDA_HOME) and later ones (the cached build): keep the warning,
            # drop the detail, so it is told apart from a warning about our file alone.
            if msg.startswith("Failed to load the CUDA extension"):
                msg = "Failed to load the CUDA extension"
            self.lines.append(f"{w.category.__name__}: {msg}")
        for line in self.handler.lines:
            if self.only_peft and not line.startswith("log peft"):
                continue
            self.lines.append(line[:300])
        return False


def num_labels(case):
    shape = case["shape"]
    return None if case["task"] == "CAUSAL_LM" else shape[-1]


def base_model(model_dir, case):
    n = num_labels(case)
    kwargs = {"num_labels": n} if n else {}
    return BASE_CLASS[case["task"]].from_pretrained(model_dir, **kwargs).eval()


def real_logits(model, ids):
    """Logits for the real tokens: PEFT's prompt tuning / P-tuning also return the virtual positions."""
    with torch.no_grad():
        out = model(input_ids=ids).logits
    if out.dim() == 3 and out.shape[1] > ids.shape[1]:
        out = out[:, -ids.shape[1]:]
    return out


def diff_to(out, case):
    if list(out.shape) != case["shape"]:
        return f"shape PEFT {list(out.shape)} vs ours {case['shape']}"
    ours = torch.tensor(case["logits"]).reshape(case["shape"])
    return float((out - ours).abs().max())


def check(model_dir, case):
    row = {"name": case["name"], "warnings": [], "auto_warnings": [], "peft_own_warnings": []}
    ids = torch.tensor(case["input_ids"])
    base = base_model(model_dir, case)
    try:
        with Capture() as cap:
            model = PeftModel.from_pretrained(base, case["dir"]).eval()
        row["warnings"] = cap.lines
        row["loads"] = True
        row["diff"] = diff_to(real_logits(model, ids), case)
    except Exception as e:  # noqa: BLE001 - the report says what PEFT said
        row["loads"] = False
        row["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"
        return row

    n = num_labels(case)
    kwargs = {"num_labels": n} if n else {}
    try:
        with Capture(only_peft=True) as cap:
            auto = AUTO_CLASS[case["task"]].from_pretrained(case["dir"], **kwargs).eval()
        row["auto_warnings"] = cap.lines
        row["auto_diff"] = diff_to(real_logits(auto, ids), case)
    except Exception as e:  # noqa: BLE001
        row["auto_error"] = f"{type(e).__name__}: {str(e)[:500]}"

    # PEFT's own save of the same config: which fields it writes, and what it warns on reload.
    try:
        cfg = PeftConfig.from_pretrained(case["dir"])
        cfg.inference_mode = False
        with tempfile.TemporaryDirectory() as tmp:
            get_peft_model(base_model(model_dir, case), cfg).save_pretrained(tmp)
            with open(os.path.join(tmp, "adapter_config.json")) as f:
                row["peft_keys"] = sorted(json.load(f).keys())
            with Capture() as cap:
                PeftModel.from_pretrained(base_model(model_dir, case), tmp)
            row["peft_own_warnings"] = cap.lines
    except Exception as e:  # noqa: BLE001
        row["peft_own_error"] = f"{type(e).__name__}: {str(e)[:500]}"
    return row


def main():
    manifest_path, report_path = sys.argv[1], sys.argv[2]
    with open(manifest_path) as f:
        manifest = json.load(f)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    # Each case names its base (the tiny GPT-2, or tiny-llama for what PEFT refuses on Conv1D).
    rows = [check(c.get("model", manifest["model"]), c) for c in manifest["cases"]]
    report = {
        "versions": {"peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "cases": rows,
    }
    with open(report_path, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
