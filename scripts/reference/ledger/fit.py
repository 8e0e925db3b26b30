"""Fits the memory ledger's tensor counts (src/lib/race/ledger.ts, ACTIVATION_COUNTS and
FORWARD_COUNTS).

Reads probe.ts's JSON lines (one measured training step each: the ledger profile, the shape
products of ACTIVATION_TERMS, the measured activations in float32 elements) and, per profile and
per moment of the step (TARGETS), solves measured = sum(count * term) by least squares. Terms that are zero for every run of a
profile, or a linear combination of terms before them (B*T*C is B*Tm*C when no prompt method
prepends tokens), are left out. The counts are numbers of tensors, so they must come out as
integers: the script prints each raw coefficient, its distance from the nearest integer, and the
largest relative error of the rounded counts, and prints the rounded tables as TypeScript.
Counts are rounded one at a time (the one nearest an integer first) with the rest refitted after
each, so a count the data pins down (logits, MLP) is never moved to absorb another's rounding.

    npx tsx scripts/reference/ledger/probe.ts wasm 300 2 > runs.jsonl
    python3 scripts/reference/ledger/fit.py runs.jsonl
"""

import json
import sys

import numpy as np

# Two moments of a step, each an exact sum of shape products, each fitted on its own: the tensors
# alive after the backward's last kernel (above the bytes before the step, less the gradients:
# ACTIVATION_COUNTS) and those alive at the end of the cross-entropy's forward (above the bytes
# before the step: FORWARD_COUNTS), where a causal LM's logits make the forward's peak. The
# rounded counts are then checked against "act", what measureLedger reports (the peak, less the
# gradients): the largest of the backward, the forward less the gradients, and the optimizer.
TARGETS = {"end": "ACTIVATION_COUNTS", "loss": "FORWARD_COUNTS"}


def scaled(x: np.ndarray) -> np.ndarray:
    """Columns at unit norm: the terms span six orders of magnitude (a scalar next to logits)."""
    return x / np.linalg.norm(x, axis=0)


def independent_columns(x: np.ndarray) -> list[int]:
    """Indices of columns that are nonzero and not a combination of earlier kept ones."""
    kept: list[int] = []
    for j in range(x.shape[1]):
        if not np.any(x[:, j]):
            continue
        trial = kept + [j]
        if np.linalg.matrix_rank(scaled(x[:, trial]), tol=1e-9) == len(trial):
            kept = trial
    return kept


def lstsq_scaled(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=0)
    coef, *_ = np.linalg.lstsq(x / norms, y, rcond=None)
    return coef / norms


def integer_counts(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rounds one count at a time, the one nearest an integer first, refitting the others each time."""
    fixed: dict[int, float] = {}
    while len(fixed) < x.shape[1]:
        free = [j for j in range(x.shape[1]) if j not in fixed]
        rest = y - sum((x[:, j] * c for j, c in fixed.items()), np.zeros_like(y))
        coef = lstsq_scaled(x[:, free], rest)
        k = int(np.argmin(np.abs(coef - np.rint(coef))))
        fixed[free[k]] = float(np.rint(coef[k]))
    return np.array([fixed[j] for j in range(x.shape[1])])


def fit(names: list[str], rs: list[dict], target: str, label: str) -> tuple[dict[str, int], np.ndarray]:
    """Rounded counts of one target for one profile's runs, and their predictions; prints the fit."""
    x = np.array([[r["terms"][n] for n in names] for r in rs], dtype=float)
    y = np.array([r[target] for r in rs], dtype=float)
    cols = independent_columns(x)
    if len(rs) < 2 * len(cols):
        print(f"{label}: {len(rs)} runs for {len(cols)} terms; probe more", file=sys.stderr)
    coef = lstsq_scaled(x[:, cols], y)
    rounded = integer_counts(x[:, cols], y)
    pred = x[:, cols] @ rounded
    fit_res = np.abs(x[:, cols] @ coef - y).max()
    rel = np.abs(pred - y) / y
    print(
        f"\n{label} ({target}): {len(rs)} runs, {len(cols)} terms; largest residual of the raw fit"
        f" {fit_res:.2g} elements; of the rounded counts {np.abs(pred - y).max():.0f} elements,"
        f" max |pred/meas - 1| = {rel.max():.2e}"
    )
    for j, c, rc in zip(cols, coef, rounded):
        print(f"  {names[j]:>18}  {c:12.4f}  -> {int(rc):5d}  (off integer {abs(c - np.rint(c)):.1e})")
    return {names[j]: int(rc) for j, rc in zip(cols, rounded) if rc != 0}, pred


def main(path: str) -> None:
    runs = [json.loads(line) for line in open(path) if line.strip()]
    names = list(runs[0]["terms"].keys())
    profiles = list(dict.fromkeys(r["profile"] for r in runs))
    tables: dict[str, dict[str, dict[str, int]]] = {t: {} for t in TARGETS}
    worst_all = 0.0
    summary = []
    for prof in profiles:
        rs = [r for r in runs if r["profile"] == prof]
        preds = {}
        for target in TARGETS:
            tables[target][prof], preds[target] = fit(names, rs, target, prof)
        # After the backward, clipping holds a square of every gradient and AdamW 1 tensor of the
        # variable it updates on wasm, our SIMD kernel's new value (ledger.ts, ADAMW_TEMPORARIES;
        # 14 with the stock ops); the forward holds no gradients yet.
        grads = np.array([r["G"] for r in rs], dtype=float)
        optimizer = np.array([max(r["G"], 1 * r["maxVar"]) for r in rs], dtype=float)
        act = np.array([r["act"] for r in rs], dtype=float)
        peak = np.maximum.reduce([preds["end"], preds["loss"] - grads, optimizer])
        rel = np.abs(peak - act) / act
        worst_all = max(worst_all, float(rel.max()))
        lm = np.array([r["taskType"] == "CAUSAL_LM" for r in rs])
        fwd_peak = int(np.sum(preds["loss"] - grads > np.maximum(preds["end"], optimizer)))
        summary.append(
            f"{prof:>13}: max |pred/meas - 1| = {rel.max():.2e} (causal LM {rel[lm].max():.2e});"
            f" the forward is the predicted peak in {fwd_peak} of {len(rs)} runs"
        )
    print("\nthe ledger's prediction (the largest phase) against the measured peak:")
    print("\n".join(summary))
    print(f"worst relative error over all runs: {worst_all:.2e}\n")
    for target, const in TARGETS.items():
        print(f"export const {const}: Record<LedgerProfile, Partial<Record<ActivationTerm, number>>> = {{")
        for prof, counts in tables[target].items():
            body = ", ".join(f"'{k}': {v}" for k, v in counts.items())
            print(f"  '{prof}': {{ {body} }},")
        print("};")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs.jsonl")
