/**
 * The exported project's train.py: transformers + PEFT + accelerate, reading settings.json (the
 * run), data/*.jsonl (the task) and tokenizer/tokenizer.json (the model's own tokenizer file, read
 * with the `tokenizers` library as PEFT Lab reads it). Only the `peft_config` function is written
 * per export (python-project.ts puts the method's config there as PEFT's own class); the rest is
 * this text. It follows PEFT Lab's trainer: random windows of seq_len + 1 tokens (causal LM) or
 * random examples padded on the right (classification, scored on the last real token by the head,
 * as PEFT Lab's clsLogits), AdamW (0.9, 0.999, 1e-8), linear warmup then cosine to zero, gradient
 * clipping, gradient accumulation, AdaLoRA's update_and_allocate after each optimizer step.
 */
export const PEFT_CONFIG_MARKER = '# @@PEFT_CONFIG@@';

export const TRAIN_PY = String.raw`#!/usr/bin/env python3
"""Train the PEFT Lab run exported here with transformers + PEFT (see README.md).

    python train.py [--max-steps N] [--model PATH_OR_HUB_ID] [--output DIR]
    accelerate launch --config_file accelerate_multi_gpu.yaml train.py
    accelerate launch --config_file accelerate_deepspeed.yaml train.py
"""
import argparse
import json
import math
import os

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from tokenizers import Tokenizer
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

import peft
from peft import get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
IGNORE_INDEX = -100


${PEFT_CONFIG_MARKER}


def read_jsonl(name):
    with open(os.path.join(HERE, "data", name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cosine_with_warmup(step, warmup_steps, total_steps):
    """PEFT Lab's schedule (src/lib/train/schedule.ts) as a multiplier of the peak learning rate."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class TaskData:
    """The splits tokenized once, as PEFT Lab does (src/lib/data/task-data.ts, cls-data.ts)."""

    def __init__(self, s):
        self.task = s["task_type"]
        self.seq_len = s["seq_len"]
        self.pad_id = s["pad_token_id"]
        tok = Tokenizer.from_file(os.path.join(HERE, "tokenizer", "tokenizer.json"))
        self.encode = lambda text: tok.encode(text, add_special_tokens=False).ids
        self.label_id = {label: i for i, label in enumerate(s["labels"])}
        self.template = s.get("template")
        self.train = self.load("train.jsonl")
        self.valid = self.load("validation.jsonl")

    def load(self, name):
        rows = read_jsonl(name)
        if self.task == "CAUSAL_LM":
            # The split's text in pieces, joined back before tokenizing: one stream of token ids.
            return torch.tensor(self.encode("".join(r["text"] for r in rows)), dtype=torch.long)
        if self.task == "SEQ_CLS":
            before = self.encode(self.template["before"]) if self.template and self.template["before"] else []
            after = self.encode(self.template["after"]) if self.template and self.template["after"] else []
            room = self.seq_len - len(before) - len(after)
            return [(before + self.encode(r["text"])[:room] + after, self.label_id[str(r["label"])]) for r in rows]
        out = []
        for r in rows:
            ids, labels = [], []
            for word, tag in zip(r["words"], r["tags"]):
                pieces = self.encode(" " + word)
                ids += pieces
                # The first sub-token of a word carries its tag; the rest are not scored.
                labels += [self.label_id[str(tag)]] + [IGNORE_INDEX] * (len(pieces) - 1)
            out.append((ids[: self.seq_len], labels[: self.seq_len]))
        return out

    def lm_batch(self, stream, starts):
        T = self.seq_len
        rows = torch.stack([stream[i : i + T + 1] for i in starts])  # [B, T + 1]
        return {"ids": rows[:, :T], "targets": rows[:, 1:]}

    def cls_batch(self, examples):
        T = max(1, max(len(ids) for ids, _ in examples))
        ids = torch.full((len(examples), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(examples), T), dtype=torch.long)
        if self.task == "SEQ_CLS":
            labels = torch.tensor([label for _, label in examples], dtype=torch.long)
        else:
            labels = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)
        for b, (row, label) in enumerate(examples):
            ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[b, : len(row)] = 1
            if self.task == "TOKEN_CLS":
                labels[b, : len(label)] = torch.tensor(label, dtype=torch.long)
        return {"ids": ids, "mask": mask, "targets": labels}

    def draw(self, gen, batch_size):
        if self.task == "CAUSAL_LM":
            high = len(self.train) - self.seq_len - 1
            starts = torch.randint(0, high + 1, (batch_size,), generator=gen).tolist()
            return self.lm_batch(self.train, starts)
        idx = torch.randint(0, len(self.train), (batch_size,), generator=gen).tolist()
        return self.cls_batch([self.train[i] for i in idx])

    def eval_batches(self, batch_size, max_batches):
        if self.task == "CAUSAL_LM":
            T = self.seq_len
            starts = list(range(0, len(self.valid) - T - 1, T))[: batch_size * max_batches]
            for i in range(0, len(starts), batch_size):
                yield self.lm_batch(self.valid, starts[i : i + batch_size])
            return
        examples = self.valid[: batch_size * max_batches]
        for i in range(0, len(examples), batch_size):
            yield self.cls_batch(examples[i : i + batch_size])


def head_of(model):
    """The trained classification head (PEFT's modules_to_save copy of score / classifier)."""
    for name, module in model.named_modules():
        if name.endswith(("score", "classifier")) and not name.endswith(("original_module", "modules_to_save")):
            return module
    raise RuntimeError("no score/classifier head in the model")


def loss_and_correct(model, data, batch):
    """Mean loss as PEFT Lab computes it, and (classification) the number of right answers."""
    ids = batch["ids"]
    T = ids.shape[1]
    if data.task == "CAUSAL_LM":
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -T:]  # [B, T, V]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["targets"].reshape(-1)), None
    out = model(input_ids=ids, attention_mask=batch["mask"], output_hidden_states=True)
    if data.task == "TOKEN_CLS":
        logits = out.logits[:, -T:]  # [B, T, L]: prompt methods put their virtual tokens first
        targets = batch["targets"]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        scored = targets != IGNORE_INDEX
        return loss, int(((logits.argmax(-1) == targets) & scored).sum())
    hidden = out.hidden_states[-1][:, -T:]  # [B, T, C] after the final LayerNorm, real positions
    last = batch["mask"].sum(-1) - 1  # the last real token of each row (padding is on the right)
    pooled = hidden[torch.arange(ids.shape[0]), last]  # [B, C]
    logits = head_of(model)(pooled)  # [B, L]
    return F.cross_entropy(logits, batch["targets"]), int((logits.argmax(-1) == batch["targets"]).sum())


def evaluate(model, data, s, accelerator):
    model.eval()
    total, count, correct = 0.0, 0, 0
    with torch.no_grad():
        for batch in data.eval_batches(s["batch_size"], s["eval_batches"]):
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            loss, right = loss_and_correct(model, data, batch)
            if data.task == "TOKEN_CLS":
                n = int((batch["targets"] != IGNORE_INDEX).sum())
            elif data.task == "SEQ_CLS":
                n = batch["ids"].shape[0]
            else:
                n = batch["targets"].numel()
            total += float(loss) * n
            count += n
            correct += right or 0
    model.train()
    loss = total / max(1, count)
    if data.task == "CAUSAL_LM":
        return {"loss": loss, "perplexity": math.exp(min(loss, 50))}
    return {"loss": loss, "accuracy": correct / max(1, count)}


def main():
    with open(os.path.join(HERE, "settings.json"), encoding="utf-8") as f:
        s = json.load(f)
    p = argparse.ArgumentParser(description="PEFT Lab's exported run")
    p.add_argument("--max-steps", type=int, default=None, help="override the number of optimizer steps")
    p.add_argument("--model", default=s["base_model"], help="base model folder or Hub id")
    p.add_argument("--output", default=os.path.join(HERE, "output"), help="where the adapter is saved")
    a = p.parse_args()
    steps = a.max_steps or s["steps"]
    warmup = min(s["warmup_steps"], steps)

    accum = s["gradient_accumulation_steps"]
    accelerator = Accelerator(gradient_accumulation_steps=accum)
    set_seed(s["seed"])
    data = TaskData(s)
    kwargs = {} if s["task_type"] == "CAUSAL_LM" else {"num_labels": len(s["labels"])}
    auto = {
        "CAUSAL_LM": AutoModelForCausalLM,
        "SEQ_CLS": AutoModelForSequenceClassification,
        "TOKEN_CLS": AutoModelForTokenClassification,
    }[s["task_type"]]
    model_path = a.model
    if not os.path.isabs(model_path) and os.path.isdir(os.path.join(HERE, model_path)):
        model_path = os.path.join(HERE, model_path)  # a folder shipped inside the project (the app's export)
    base = auto.from_pretrained(model_path, dtype=torch.float32, **kwargs)
    base.config.pad_token_id = data.pad_id
    if s["gradient_checkpointing"]:
        base.gradient_checkpointing_enable()
    model = get_peft_model(base, peft_config(steps))
    if accelerator.is_main_process:
        model.print_trainable_parameters()
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=s["weight_decay"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: cosine_with_warmup(i, warmup, steps))
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    # Each process draws its own examples: the effective batch is batch_size x accumulation x processes.
    gen = torch.Generator().manual_seed(s["seed"] + accelerator.process_index)

    before = evaluate(model, data, s, accelerator)
    model.train()
    for step in range(steps):
        losses = []
        for _ in range(accum):
            batch = {k: v.to(accelerator.device) for k, v in data.draw(gen, s["batch_size"]).items()}
            with accelerator.accumulate(model):
                loss, _ = loss_and_correct(model, data, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and s["max_grad_norm"] > 0:
                    accelerator.clip_grad_norm_(params, s["max_grad_norm"])
                optimizer.step()
                schedule.step()
                if accelerator.sync_gradients and s["peft_type"] == "ADALORA":
                    # AdaLoRA's rank budget, after the update and before the gradients are cleared.
                    accelerator.unwrap_model(model).base_model.update_and_allocate(step)
                optimizer.zero_grad()
            losses.append(float(loss.detach()))
        if accelerator.is_main_process:
            print(json.dumps({"step": step + 1, "loss": sum(losses) / len(losses), "lr": schedule.get_last_lr()[0]}), flush=True)
    after = evaluate(model, data, s, accelerator)

    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(
        a.output,
        is_main_process=accelerator.is_main_process,
        save_function=accelerator.save,
        state_dict=accelerator.get_state_dict(model),
    )
    if accelerator.is_main_process:
        print(json.dumps({"steps": steps, "eval_before": before, "eval_after": after, "output": a.output, "peft": peft.__version__}))


if __name__ == "__main__":
    main()
`;
