"""Repeats one of our P-tuning runs (dump_ours.ts's JSON) with HF PEFT 0.21's PromptEncoder.

Same bundled GPT-2 folder, the same tokenized examples and batches, the same initial encoder
weights (ours loaded into PEFT's, [in, out] transposed to nn.Linear's [out, in]), the same loss
(cross-entropy over the LM head's logits of the verbalizer tokens at the last real position after
the virtual tokens), torch AdamW (betas 0.9/0.999, eps 1e-8, no decay), clip_grad_norm_ 1.0 and our
schedule (linear warmup from lr/warm, cosine to 0). Prints the first-step loss and gradient gaps
against ours, the per-step loss gap, and PEFT's held-out accuracy and predictions.

  /work/venv/bin/python scripts/reference/p_tuning_training/peft_train.py /tmp/ours.json \
      [--lr 1e-2] [--steps 200] [--hidden 96] [--fresh-init] [--seed 0]

--lr/--steps/--hidden/--fresh-init leave our run behind (PEFT's own init with torch.manual_seed):
the batches are still ours (cycled when --steps exceeds them).
"""

import argparse
import json
import math
import sys

import torch
from peft import PromptEncoderConfig, get_peft_model
from transformers import GPT2LMHeadModel

p = argparse.ArgumentParser()
p.add_argument("dump")
p.add_argument("--lr", type=float)
p.add_argument("--steps", type=int)
p.add_argument("--hidden", type=int)
p.add_argument("--fresh-init", action="store_true")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
d = json.load(open(args.dump))
torch.manual_seed(args.seed)
torch.set_num_threads(1)  # the machine is shared: spinning OMP threads stall

cfg = d["config"]
base = GPT2LMHeadModel.from_pretrained(f"public/models/{d['model']}")
base.eval()  # pdrop is 0 anyway
n = cfg["numVirtualTokens"]
hidden = args.hidden or cfg["encoderHiddenSize"]
enc_type = cfg["encoderReparameterizationType"]
pc = PromptEncoderConfig(
    task_type="CAUSAL_LM",
    num_virtual_tokens=n,
    encoder_reparameterization_type=enc_type,
    encoder_hidden_size=hidden,
    encoder_num_layers=cfg["encoderNumLayers"],
    encoder_dropout=cfg["encoderDropout"],
)
model = get_peft_model(base, pc)
enc = model.prompt_encoder["default"]
trainable = {k: v for k, v in enc.named_parameters()}
fresh = args.fresh_init or (args.hidden is not None and args.hidden != cfg["encoderHiddenSize"])
if not fresh:
    with torch.no_grad():
        for k, v in d["init"].items():
            name = k.removeprefix("prompt_encoder.")
            t = torch.tensor(v["data"], dtype=torch.float32).reshape(v["shape"])
            if t.dim() == 2 and name != "embedding.weight":
                t = t.T  # ours [in, out], torch [out, in]
            trainable[name].copy_(t)
model.train()
verb = torch.tensor(d["verbalizerTokenIds"])


def batch(idx, rows):
    ex = [rows[i] for i in idx]
    T = max(len(e[0]) for e in ex)
    ids = torch.full((len(ex), T), d["padId"], dtype=torch.long)
    mask = torch.zeros((len(ex), T), dtype=torch.long)
    for b, (t, _) in enumerate(ex):
        ids[b, : len(t)] = torch.tensor(t)
        mask[b, : len(t)] = 1
    last = torch.tensor([len(e[0]) - 1 for e in ex])
    return ids, mask, last, torch.tensor([e[1] for e in ex])


def logits_of(ids, mask, last):
    out = model(input_ids=ids, attention_mask=mask)  # PEFT prepends the n virtual tokens
    h = out.logits[torch.arange(ids.shape[0]), n + last]  # [B, V]
    return h[:, verb]


def loss_of(idx):
    ids, mask, last, y = batch(idx, d["train"])
    return torch.nn.functional.cross_entropy(logits_of(ids, mask, last), y)


steps = args.steps or d["steps"]
lr = args.lr or d["lr"]
warm = min(100, steps // 10)


def sched(s):
    if s < warm:
        return (s + 1) / warm
    prog = (s - warm) / max(1, steps - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))


params = [p for p in model.parameters() if p.requires_grad]
print("trainable", flush=True)
print("trainable", sum(p.numel() for p in params), "of", [k for k in trainable])

if not fresh:
    loss = loss_of(d["batches"][0])
    loss.backward()
    worst = 0.0
    for k, g in d["grad0"].items():
        name = k.removeprefix("prompt_encoder.")
        pg = trainable[name].grad
        ours = torch.tensor(g).reshape(pg.T.shape if pg.dim() == 2 and name != "embedding.weight" else pg.shape)
        if pg.dim() == 2 and name != "embedding.weight":
            ours = ours.T
        gap = (pg - ours).abs().max().item() / max(1e-12, pg.abs().max().item())
        worst = max(worst, gap)
        print(f"  grad {name}: |peft| max {pg.abs().max().item():.3e}, rel gap {gap:.2e}")
    print(f"first-step loss: peft {loss.item():.6f}, ours {d['loss0']:.6f}; worst grad rel gap {worst:.2e}")
    model.zero_grad()

opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
losses = []
for s in range(steps):
    for g in opt.param_groups:
        g["lr"] = lr * sched(s)
    loss = loss_of(d["batches"][s % len(d["batches"])])
    opt.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    losses.append((loss.item(), norm.item()))
    if s % 20 == 0:
        print(f"step {s} loss {loss.item():.4f}", flush=True)

if not fresh and steps == d["steps"] and lr == d["lr"]:
    ours = d["steps_log"]
    gaps = [abs(a[0] - b["loss"]) for a, b in zip(losses, ours)]
    first_big = next((i for i, g in enumerate(gaps) if g > 1e-4), None)
    print(f"loss gap: steps 0-4 {[f'{g:.1e}' for g in gaps[:5]]}, max {max(gaps):.2e}, first > 1e-4 at {first_big}")
    print(f"  peft first 5 {[round(l, 5) for l, _ in losses[:5]]} ours {[round(x['loss'], 5) for x in ours[:5]]}")
    print(f"  grad norms peft {[round(g, 4) for _, g in losses[:5]]} ours {[round(x['gradNorm'], 4) for x in ours[:5]]}")

model.eval()
preds, gold = [], []
with torch.no_grad():
    for i in range(0, len(d["valid"]), 16):
        idx = list(range(i, min(i + 16, len(d["valid"]))))
        ids, mask, last, y = batch(idx, d["valid"])
        preds += logits_of(ids, mask, last).argmax(-1).tolist()
        gold += y.tolist()
acc = sum(int(a == b) for a, b in zip(preds, gold)) / len(gold)


def f1(c):
    tp = sum(1 for a, b in zip(preds, gold) if a == c and b == c)
    fp = sum(1 for a, b in zip(preds, gold) if a == c and b != c)
    fn = sum(1 for a, b in zip(preds, gold) if a != c and b == c)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


print(
    f"PEFT {enc_type} h{hidden} lr {lr} steps {steps}{' fresh init' if fresh else ''}: acc {acc:.3f}, "
    f"macro-F1 {(f1(0) + f1(1)) / 2:.3f}, predicted spam {sum(preds)}/{len(preds)}, "
    f"last losses {[round(l, 3) for l, _ in losses[-5:]]}; ours acc {d['after']['accuracy']:.3f} "
    f"spam {d['after']['spam']}"
)
sys.stdout.flush()
