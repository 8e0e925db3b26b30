#!/bin/sh
# `npm run setup:python`: the Python that `npm run bench` drives for its HF PEFT rows, in
# .cache/peft-venv (not committed). Wheels come from the local mirror (../shared/ENVIRONMENT.md);
# without PIP_INDEX_URL pip first retries the unreachable PyPI for minutes. Set PIP_INDEX_URL to
# use another index.
set -eu
cd "$(dirname "$0")/.."
python3 -m venv .cache/peft-venv
PIP_INDEX_URL="${PIP_INDEX_URL:-file:///opt/pypi/simple}" .cache/peft-venv/bin/pip install torch==2.13.0 transformers peft accelerate
echo "ready: .cache/peft-venv/bin/python (npm run bench finds it)"
