"""Pretrains a bundled PEFT Lab base model with PyTorch (build-time tool only).

Our own engine (TypeScript, tfjs on wasm) trains several times slower than PyTorch on these CPUs,
so the larger bundled models are trained here and written in the same HuggingFace folder formats
our engine reads; a unit test checks our logits against this model's to 1e-4.

Two families (--arch, implied by --id):
- gpt2: GPT-2 exactly as HF modeling_gpt2.py defines it (pre-LN blocks, gelu_new, tied lm_head,
  Conv1D weights stored [in, out]), written by hand so Debian's python3-torch (no transformers) runs it.
- llama: transformers' own LlamaForCausalLM built from a LlamaConfig (RMSNorm, RoPE, SwiGLU,
  grouped-query attention, tied embeddings) and written by its save_pretrained, so the folder is
  exactly what transformers reads. Needs transformers: /work/venv/bin/python (torch 2.13,
  transformers 5.18 from the local wheel mirror).
Both train on the same corpus and tokenizer with the same optimizer, schedule and batches.

Resumable: a checkpoint (weights, optimizer, step) is written every --ckpt-every steps to
.cache/pretrain/<id>/ckpt.pt; batches are drawn from an RNG seeded by the step number, so a
resumed run sees exactly the batches an uninterrupted one would.

Run (see scripts/pretrain/README.md):
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/pretrain/pretrain_torch.py --id peftlab-s
  OPENBLAS_NUM_THREADS=1 /work/venv/bin/python scripts/pretrain/pretrain_torch.py --arch llama --id peftlab-m-llama
"""
import argparse, json, math, os, struct, time, shutil
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {
    # id: (n_embd, n_layer, n_head, tokens to train on, peak lr, batch size)
    "peftlab-s": (96, 3, 4, 6_000_000, 3e-3, 16),
    "peftlab-m": (192, 4, 6, 10_000_000, 2e-3, 16),
    # peftlab-l: budget sized to finish inside one working session on one core (about 2 hours).
    "peftlab-l": (320, 6, 8, 5_600_000, 1.5e-3, 16),
}
# Llama-style bases: sized to match the GPT-2 base of the same letter in parameters, trained on the same budget.
LLAMA_SIZES = {
    # peftlab-m-llama: peftlab-m's width (192) and depth (4); 6 query heads of 32 sharing 2 key/value heads
    # (GQA 3:1, as SmolLM2-135M's 9:3); SwiGLU width 624 brings the total to 2,225,856 parameters, within 0.2%
    # of peftlab-m's 2,222,208 (GQA and RoPE save the parameters that go to the MLP instead).
    "peftlab-m-llama": dict(hidden=192, layers=4, heads=6, kv_heads=2, intermediate=624,
                            tokens=10_000_000, lr=2e-3, batch=16),
}
BLOCK = 256
ROPE_THETA = 10000.0

def llama_config(V, eos, size):
    """The LlamaConfig of a LLAMA_SIZES entry (transformers imported here so the gpt2 path runs without it)."""
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=V, hidden_size=size["hidden"], intermediate_size=size["intermediate"],
                       num_hidden_layers=size["layers"], num_attention_heads=size["heads"],
                       num_key_value_heads=size["kv_heads"], head_dim=size["hidden"] // size["heads"],
                       hidden_act="silu", max_position_embeddings=BLOCK, rms_norm_eps=1e-5,
                       rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
                       tie_word_embeddings=True, attention_bias=False, mlp_bias=False, initializer_range=0.02,
                       bos_token_id=eos, eos_token_id=eos, pad_token_id=None, dtype="float32")

class LlamaLM(nn.Module):
    """transformers' LlamaForCausalLM with the GPT class's interface: token ids [B, T] -> logits [B, T, V].
    SDPA attention for training speed; the reference fixture is computed with eager attention."""
    def __init__(s, config):
        super().__init__()
        from transformers import LlamaForCausalLM
        config._attn_implementation = "sdpa"
        # Built (and initialized, HF's normal(0, 0.02) with RMSNorm weights at 1) under the caller's torch seed.
        s.hf = LlamaForCausalLM(config)

    def forward(s, idx):
        return s.hf(input_ids=idx, use_cache=False).logits

class Block(nn.Module):
    def __init__(s, d, h):
        super().__init__()
        s.h = h
        s.ln_1 = nn.LayerNorm(d, eps=1e-5); s.ln_2 = nn.LayerNorm(d, eps=1e-5)
        # Stored as HF Conv1D: weight [in, out].
        s.c_attn_w = nn.Parameter(torch.randn(d, 3 * d) * 0.02); s.c_attn_b = nn.Parameter(torch.zeros(3 * d))
        s.c_proj_w = nn.Parameter(torch.randn(d, d) * 0.02); s.c_proj_b = nn.Parameter(torch.zeros(d))
        s.fc_w = nn.Parameter(torch.randn(d, 4 * d) * 0.02); s.fc_b = nn.Parameter(torch.zeros(4 * d))
        s.mlp_proj_w = nn.Parameter(torch.randn(4 * d, d) * 0.02); s.mlp_proj_b = nn.Parameter(torch.zeros(d))

    def forward(s, x, mask):
        B, T, C = x.shape
        D = C // s.h
        qkv = s.ln_1(x) @ s.c_attn_w + s.c_attn_b
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, s.h, D).transpose(1, 2)  # [B, H, T, D]
        k = k.view(B, T, s.h, D).transpose(1, 2)
        v = v.view(B, T, s.h, D).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        att = att.masked_fill(mask[:T, :T] == 0, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ s.c_proj_w + s.c_proj_b
        m = s.ln_2(x) @ s.fc_w + s.fc_b
        m = 0.5 * m * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (m + 0.044715 * m.pow(3))))  # gelu_new
        return x + m @ s.mlp_proj_w + s.mlp_proj_b

class GPT(nn.Module):
    def __init__(s, V, P, d, L, h):
        super().__init__()
        s.wte = nn.Parameter(torch.randn(V, d) * 0.02)
        s.wpe = nn.Parameter(torch.randn(P, d) * 0.01)
        s.blocks = nn.ModuleList([Block(d, h) for _ in range(L)])
        s.ln_f = nn.LayerNorm(d, eps=1e-5)
        s.register_buffer("mask", torch.tril(torch.ones(P, P)))
        # GPT-2 scales residual projections by 1/sqrt(2 L) at init.
        for b in s.blocks:
            with torch.no_grad():
                b.c_proj_w.mul_(1 / math.sqrt(2 * L)); b.mlp_proj_w.mul_(1 / math.sqrt(2 * L))

    def forward(s, idx):
        T = idx.shape[1]
        x = s.wte[idx] + s.wpe[:T]
        for b in s.blocks:
            x = b(x, s.mask)
        return s.ln_f(x) @ s.wte.t()

def hf_state(model):
    """Our parameters under HuggingFace GPT2LMHeadModel's key names, as numpy arrays."""
    return {k: v.detach().cpu().numpy() for k, v in hf_state_params(model).items()}

def hf_state_params(model):
    """Our parameters under HuggingFace GPT2LMHeadModel's key names."""
    out = {"transformer.wte.weight": model.wte, "transformer.wpe.weight": model.wpe,
           "transformer.ln_f.weight": model.ln_f.weight, "transformer.ln_f.bias": model.ln_f.bias}
    for i, b in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        out.update({p + "ln_1.weight": b.ln_1.weight, p + "ln_1.bias": b.ln_1.bias,
                    p + "ln_2.weight": b.ln_2.weight, p + "ln_2.bias": b.ln_2.bias,
                    p + "attn.c_attn.weight": b.c_attn_w, p + "attn.c_attn.bias": b.c_attn_b,
                    p + "attn.c_proj.weight": b.c_proj_w, p + "attn.c_proj.bias": b.c_proj_b,
                    p + "mlp.c_fc.weight": b.fc_w, p + "mlp.c_fc.bias": b.fc_b,
                    p + "mlp.c_proj.weight": b.mlp_proj_w, p + "mlp.c_proj.bias": b.mlp_proj_b})
    return out

def write_safetensors(path, tensors, dtype="F32"):
    """safetensors by hand (no Python package here): u64 LE header length, JSON header, raw data."""
    npdt = {"F32": "<f4", "F16": "<f2"}[dtype]
    header, chunks, off = {}, [], 0
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name].astype(npdt)).tobytes()
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw); off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for c in chunks: f.write(c)
    os.replace(path + ".tmp", path)

def read_safetensors(path):
    """The inverse of write_safetensors (F32 or F16), as float32 arrays."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n]); body = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__": continue
        dt = {"F32": "<f4", "F16": "<f2"}[e["dtype"]]
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=dt).astype(np.float32).reshape(e["shape"])
    return out

def load_hf_folder(model, folder):
    """Loads a bundled HF folder's weights into our module (the inverse of hf_state / save_pretrained)."""
    if isinstance(model, LlamaLM):
        from safetensors.torch import load_file
        state = load_file(os.path.join(folder, "model.safetensors"))
        # The tied lm_head is not stored; load_state_dict reports it missing and it stays tied to embed_tokens.
        res = model.hf.load_state_dict(state, strict=False)
        missing = [k for k in res.missing_keys if k != "lm_head.weight"]
        if missing or res.unexpected_keys:
            raise SystemExit(f"{folder}: model.safetensors lacks {missing} / has unexpected {res.unexpected_keys}")
        return
    tensors = read_safetensors(os.path.join(folder, "model.safetensors"))
    with torch.no_grad():
        for name, p in hf_state_params(model).items():
            if name not in tensors: raise SystemExit(f"{folder}: {name} missing from model.safetensors")
            src = torch.from_numpy(tensors[name])
            if tuple(src.shape) != tuple(p.shape): raise SystemExit(f"{folder}: {name} is {tuple(src.shape)}, expected {tuple(p.shape)}")
            p.copy_(src)

def evaluate(model, data, max_windows=None):
    """Mean nats per token with a sliding window: context BLOCK, each window scores its last half."""
    model.eval(); total, count, half = 0.0, 0, BLOCK // 2
    starts = list(range(0, len(data) - BLOCK - 1, half))
    if max_windows: starts = starts[:max_windows]
    with torch.no_grad():
        for i in range(0, len(starts), 32):
            sl = starts[i:i + 32]
            x = torch.stack([torch.from_numpy(data[s:s + BLOCK].astype(np.int64)) for s in sl])
            y = torch.stack([torch.from_numpy(data[s + 1:s + 1 + BLOCK].astype(np.int64)) for s in sl])
            logits = model(x)
            lo = 0 if sl[0] == 0 and i == 0 else half
            nll = F.cross_entropy(logits[:, half:].reshape(-1, logits.shape[-1]), y[:, half:].reshape(-1), reduction="sum")
            total += nll.item(); count += y[:, half:].numel()
    model.train()
    return total / count

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--id", required=True, choices=list(SIZES) + list(LLAMA_SIZES))
    ap.add_argument("--arch", choices=["gpt2", "llama"], default=None,
                    help="the model family; implied by --id (gpt2 for peftlab-s/m/l, llama for peftlab-m-llama)")
    ap.add_argument("--out", default=None,
                    help="the HF folder to write (default public/models/<id>); a smoke run writes elsewhere")
    ap.add_argument("--tokens", type=int, default=None, help="override the token budget")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--continue-from", default=None,
                    help="a bundled folder (public/models/<id>) whose weights this run trains on from, with a fresh "
                         "optimizer and a new warmup + cosine schedule over --tokens more tokens")
    ap.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    arch = "llama" if a.id in LLAMA_SIZES else "gpt2"
    if a.arch and a.arch != arch:
        raise SystemExit(f"--id {a.id} is a {arch} model, not {a.arch}; {a.arch} ids: "
                         f"{', '.join(LLAMA_SIZES if a.arch == 'llama' else SIZES)}")
    if arch == "llama":
        size = LLAMA_SIZES[a.id]
        d, L, H, budget, lr_max, bs = size["hidden"], size["layers"], size["heads"], size["tokens"], size["lr"], size["batch"]
    else:
        d, L, H, budget, lr_max, bs = SIZES[a.id]
    budget = a.tokens or budget
    lr_max = a.lr or lr_max
    # PEFT_LAB_PRETRAIN_DIR may point outside the work tree, so checkpoints outlive a fresh checkout.
    run_id = a.id + ("-continued" if a.continue_from else "")
    corpus = ".cache/corpus"; work = os.path.join(os.environ.get("PEFT_LAB_PRETRAIN_DIR", ".cache/pretrain"), run_id)
    os.makedirs(work, exist_ok=True)
    stats = json.load(open(f"{corpus}/stats.json"))
    V = stats["vocabSize"]
    train = np.fromfile(f"{corpus}/train.bin", dtype=np.uint16)
    val = np.fromfile(f"{corpus}/val.bin", dtype=np.uint16)
    torch.manual_seed(a.seed)
    model = LlamaLM(llama_config(V, stats["eosId"], size)) if arch == "llama" else GPT(V, BLOCK, d, L, H)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr_max, betas=(0.9, 0.95), eps=1e-8)
    total_steps = budget // (bs * BLOCK); warmup = min(300, total_steps // 10)
    step, wall, curve = 0, 0.0, []
    # A continued run starts from the bundled weights; its figures add to the first run's (tokens, wall time,
    # curve), so the card reports everything the model has seen. Batches are drawn from seed + 1 so they differ
    # from the first run's.
    prior = {"tokens_seen": 0, "wall_s": 0.0, "curve": [], "steps": 0}
    if a.continue_from:
        load_hf_folder(model, a.continue_from)
        prior = json.load(open(os.path.join(a.continue_from, "training.json")))
        prior.setdefault("phases", [{k: prior[k] for k in ("steps", "tokens_seen", "wall_s", "val_bits_per_byte")}])
        warmup = min(100, total_steps // 10)
        a.seed += 1
    ck = f"{work}/ckpt.pt"
    if os.path.exists(ck):
        s = torch.load(ck)
        model.load_state_dict(s["model"]); opt.load_state_dict(s["opt"])
        step, wall, curve = s["step"], s["wall"], s["curve"]
        print(f"resumed at step {step}/{total_steps}", flush=True)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"{a.id}: {nparams} params, {total_steps} steps of {bs}x{BLOCK} tokens", flush=True)
    log = open(f"{work}/log.txt", "a")
    t_last = time.time(); run_loss = None
    while step < total_steps:
        lr = lr_max * (step + 1) / warmup if step < warmup else \
            lr_max * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup))))
        for g in opt.param_groups: g["lr"] = lr
        rng = np.random.default_rng(a.seed * 1_000_003 + step)
        offs = rng.integers(0, len(train) - BLOCK - 1, size=bs)
        x = torch.from_numpy(np.stack([train[o:o + BLOCK] for o in offs]).astype(np.int64))
        y = torch.from_numpy(np.stack([train[o + 1:o + 1 + BLOCK] for o in offs]).astype(np.int64))
        loss = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
        step += 1
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step % 50 == 0 or step == total_steps:
            now = time.time(); wall += now - t_last; t_last = now
            entry = {"step": prior["steps"] + step, "tokens": prior["tokens_seen"] + step * bs * BLOCK, "train_loss": round(run_loss, 4), "wall_s": round(prior["wall_s"] + wall, 1)}
            if step % 500 == 0 or step == total_steps:
                entry["val_loss"] = round(evaluate(model, val, max_windows=256), 4)
                t_last = time.time()
            curve.append(entry)
            msg = json.dumps(entry); print(msg, flush=True); log.write(msg + "\n"); log.flush()
        if step % a.ckpt_every == 0 or step == total_steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "wall": wall, "curve": curve}, ck + ".tmp")
            os.replace(ck + ".tmp", ck)
    # Final: full held-out evaluation and the HF folder.
    t0 = time.time(); val_nats = evaluate(model, val)
    vs = stats["splits"]["val"]
    # Every val token (EOS included) is scored, but only document bytes count: a slightly pessimistic bpb.
    bpb = val_nats * len(val) / vs["bytes"] / math.log(2)
    result = {"id": a.id, "params": nparams, "n_embd": d, "n_layer": L, "n_head": H, "steps": prior["steps"] + step,
              "tokens_seen": prior["tokens_seen"] + step * bs * BLOCK, "wall_s": round(prior["wall_s"] + wall, 1),
              "train_loss": curve[-1]["train_loss"],
              "val_nats_per_token": round(val_nats, 4), "val_bits_per_byte": round(bpb, 4),
              "val_tokens": int(len(val)), "val_bytes": vs["bytes"], "curve": prior["curve"] + curve}
    if arch == "llama":
        result.update({"arch": "llama", "n_kv_head": size["kv_heads"], "intermediate_size": size["intermediate"],
                       "torch": torch.__version__})
    if a.continue_from:
        result["phases"] = prior["phases"] + [{"steps": step, "tokens_seen": step * bs * BLOCK, "wall_s": round(wall, 1),
                                              "peak_lr": lr_max, "val_bits_per_byte": round(bpb, 4),
                                              "torch": torch.__version__}]
    out = a.out or f"public/models/{a.id}"; os.makedirs(out, exist_ok=True)
    if arch == "llama":
        # config.json and model.safetensors exactly as transformers writes them (tied lm_head not stored).
        model.hf.save_pretrained(out)
        # The GPT-2 folders carry no generation_config.json and the app reads only config.json; keep the layout alike.
        gen = os.path.join(out, "generation_config.json")
        if os.path.exists(gen): os.remove(gen)
        shutil.copy(f"{corpus}/tokenizer.json", f"{out}/tokenizer.json")
        json.dump(result, open(f"{out}/training.json", "w"), indent=1)
        print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
        return
    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": V, "n_positions": BLOCK,
           "n_ctx": BLOCK, "n_embd": d, "n_layer": L, "n_head": H, "n_inner": None, "activation_function": "gelu_new",
           "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "layer_norm_epsilon": 1e-5,
           "initializer_range": 0.02, "bos_token_id": stats["eosId"], "eos_token_id": stats["eosId"],
           "tie_word_embeddings": True, "torch_dtype": "float32"}
    json.dump(cfg, open(f"{out}/config.json", "w"), indent=2)
    write_safetensors(f"{out}/model.safetensors", hf_state(model), "F16" if a.id == "peftlab-l" else "F32")
    shutil.copy(f"{corpus}/tokenizer.json", f"{out}/tokenizer.json")
    json.dump(result, open(f"{out}/training.json", "w"), indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)

if __name__ == "__main__":
    main()
