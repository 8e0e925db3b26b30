"""HF PEFT side of `npm run bench`: torch + transformers + PEFT on one thread, driven by the Node
bench over stdin/stdout, one JSON object per line, so its runs interleave with ours and nanogpt's
(scripts/bench/peft.ts). It does the same work as our jobs on the same model folder:

  forward  logits of a [batch, seq] batch, no autograd (torch.inference_mode)
  lora     one AdamW step of LoRA r 8, alpha 8, dropout 0 on c_attn (fan_in_fan_out, GPT-2's
           Conv1D), next-token loss, gradient clipping at norm 1, loss read back (.item())
  full     the same step with every base weight trainable

Each run is timed here (perf_counter for wall, process_time for CPU), so pipe latency is not
counted. Requests: {"cmd": "setup", "model": DIR, "batch": B, "seq": T, "seed": S}, then
{"cmd": "run", "job": "forward" | "lora" | "full"}, then {"cmd": "quit"}. Replies:
{"ok": true, ...} or {"ok": false, "error": "..."}.
"""

import json
import os
import sys
import time
import traceback

# One thread, set before torch is imported (its OpenMP pool reads these once).
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

import peft  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Bench:
    def __init__(self, model_dir, batch, seq, seed):
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.batch = batch
        self.seq = seq
        self.fwd_model = self.load(model_dir).eval()
        self.vocab = self.fwd_model.config.vocab_size
        self.ids = self.draw()

        lora_base = self.load(model_dir)
        cfg = LoraConfig(
            r=8,
            lora_alpha=8,
            lora_dropout=0.0,
            target_modules=["c_attn"],
            fan_in_fan_out=True,
            bias="none",
            task_type="CAUSAL_LM",
        )
        self.lora_model = get_peft_model(lora_base, cfg)
        self.lora_model.train()
        self.lora_params = [p for p in self.lora_model.parameters() if p.requires_grad]
        self.lora_opt = torch.optim.AdamW(self.lora_params, lr=1e-3, eps=1e-8, weight_decay=0.0)

        self.full_model = self.load(model_dir).train()
        self.full_params = [p for p in self.full_model.parameters() if p.requires_grad]
        self.full_opt = torch.optim.AdamW(self.full_params, lr=1e-3, eps=1e-8, weight_decay=0.0)

    @staticmethod
    def load(model_dir):
        # eager attention: the same composition (scores, mask, softmax, weighted sum) as ours.
        return GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32)

    def draw(self):
        # Random ids, uniform over the vocabulary: speed does not depend on which ids they are.
        return torch.randint(0, self.vocab, (self.batch, self.seq), generator=self.gen)

    def info(self):
        count = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
        return {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "threads": torch.get_num_threads(),
            "loraParams": count(self.lora_params),
            "fullParams": count(self.full_params),
        }

    def step(self, model, params, opt):
        ids = self.draw()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.item()

    def run(self, job):
        c0 = time.process_time()
        t0 = time.perf_counter()
        if job == "forward":
            with torch.inference_mode():
                logits = self.fwd_model(input_ids=self.ids).logits
                float(logits[0, 0, 0])
        elif job == "lora":
            self.step(self.lora_model, self.lora_params, self.lora_opt)
        elif job == "full":
            self.step(self.full_model, self.full_params, self.full_opt)
        else:
            raise ValueError(f"unknown job {job!r}: expected forward, lora or full")
        return {"wallMs": (time.perf_counter() - t0) * 1000, "cpuMs": (time.process_time() - c0) * 1000}


def main():
    bench = None
    for line in sys.stdin:
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "setup":
                bench = Bench(req["model"], int(req["batch"]), int(req["seq"]), int(req.get("seed", 0)))
                reply({"ok": True, **bench.info()})
            elif cmd == "run":
                if bench is None:
                    raise RuntimeError("run before setup")
                reply({"ok": True, **bench.run(req["job"])})
            elif cmd == "quit":
                reply({"ok": True})
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Exception as e:  # the bench reports it and drops the job; the child stays up
            reply({"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()})


if __name__ == "__main__":
    main()
