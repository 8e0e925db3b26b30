#!/usr/bin/env bash
# Pretrains the bundled base models one after another, each resumable (see pretrain_torch.py).
# Progress: .cache/pretrain/<id>/log.txt and .cache/pretrain/run.log
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f .cache/corpus/train.bin ] || npx tsx scripts/prepare-corpus.ts
for id in "${@:-peftlab-s peftlab-m peftlab-l}"; do
  for one in $id; do
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/pretrain/pretrain_torch.py --id "$one"
  done
done
