#!/usr/bin/env bash
# Humpback's loop (instruction backtranslation, arXiv 2308.06259) as plain `gen` commands:
#
#   seed ─► M_yx (backward) and M0 (forward, seed only)
#   corpus ─► backtranslate with M_yx ─► candidates
#   round k = 1..ROUNDS: M_{k-1} rates the candidates ─► A_k (score >= THRESHOLD)
#                        M_k trained on seed + A_k, tagged seed / augmented
#   report
#
# Each step is skipped when its folder's manifest says "complete", and every gen command
# resumes on its own, so running this again after a crash continues where it stopped.
# Run it through `./run.sh rounds` (which sets up the environment), or directly with `gen` on PATH.
set -euo pipefail

# ---- settings: change them here or override from the environment ---------------------------------
BASE=${BASE:-smollm2-135m}        # base model: a folder, a hub id, or the embedded smollm2-135m
SEED=${SEED:-oasst1}              # seed pairs: oasst1 (hub), an Open Assistant export, or a records .jsonl
SEED_LIMIT=${SEED_LIMIT:-3200}    # Humpback used 3,200 Open Assistant pairs
CORPUS=${CORPUS:-clueweb}         # unlabeled text: clueweb (with CORPUS_DIR), a file or folder, hf:NAME
CORPUS_DIR=${CORPUS_DIR:-}        # ClueWeb22 root (or set CLUEWEB22_ROOT)
CORPUS_LIMIT=${CORPUS_LIMIT:-}    # documents to read (empty: all)
BACKEND=${BACKEND:-hf}            # hf | vllm: where M_yx generates and M_k rates
THRESHOLD=${THRESHOLD:-5}         # A_k keeps score >= THRESHOLD (A5 in the paper's first round)
ROUNDS=${ROUNDS:-2}               # M1, M2, ...
OUT=${OUT:-runs/rounds}
TRAIN_FLAGS=${TRAIN_FLAGS:-}      # extra `gen train` flags, e.g. "--max-steps 200 --batch-size 16"
AUGMENT_FLAGS=${AUGMENT_FLAGS:-}  # extra `gen backtranslate` flags, e.g. "--concurrency 64"
CURATE_FLAGS=${CURATE_FLAGS:-}    # extra `gen curate` flags, e.g. "--retries-unparsed 1"
JUDGE_MODEL=${JUDGE_MODEL:-}      # set to rate with an external judge (OpenAI-compatible) instead of M_k
JUDGE_BASE_URL=${JUDGE_BASE_URL:-}
BACKWARD_BASE_URL=${BACKWARD_BASE_URL:-}  # set when M_yx is served, e.g. `vllm serve BASE --enable-lora
BACKWARD_MODEL=${BACKWARD_MODEL:-backward} #   --lora-modules backward=OUT/round0/backward`: backtranslate through it
# ---------------------------------------------------------------------------------------------------

complete() { [ -f "$1/manifest.json" ] && grep -q '"status": *"complete"' "$1/manifest.json"; }

step() {  # step DIR command...: run the command unless DIR is already complete
  local dir=$1; shift
  if complete "$dir"; then echo "== skip $dir (complete)"; return; fi
  echo "== $*"
  "$@"
}

# The seed: a records file goes in as --data, anything else through the Open Assistant loader.
if [[ "$SEED" == *.jsonl && -f "$SEED" ]] && head -c 4096 "$SEED" | grep -q '"messages"'; then
  seed_args=(--data "$SEED")
else
  seed_args=(--seed-data "$SEED" --seed-limit "$SEED_LIMIT")
fi

# The rater of round k: M_{k-1} on BACKEND, or the external judge.
rater_args() {
  if [ -n "$JUDGE_MODEL" ]; then
    echo --backend openai --model "$JUDGE_MODEL" ${JUDGE_BASE_URL:+--base-url "$JUDGE_BASE_URL"}
  else
    echo --backend "$BACKEND" --model "$BASE" --adapter "$1"
  fi
}

lineage() {  # lineage ROUND_DIR RATER_ADAPTER: what went in and came out of a round, in one file
  python3 - "$@" <<'PY'
import json, sys, pathlib
round_dir, rater = pathlib.Path(sys.argv[1]), sys.argv[2]
def manifest(d):
    p = pathlib.Path(d) / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else {}
cur, model = manifest(round_dir / "curate"), manifest(round_dir / "model")
info = {"round": round_dir.name, "rater": rater,
        "inputs": {"candidates": str(round_dir.parent / "round0" / "augment" / "data.jsonl"),
                   "seed": sys.argv[3]},
        "outputs": {"curated": str(round_dir / "curate" / "data.jsonl"), "adapter": str(round_dir / "model")},
        "counts": {"curate": cur.get("counts"), "train": model.get("data")},
        "base": sys.argv[4]}
(round_dir / "lineage.json").write_text(json.dumps(info, indent=2) + "\n")
PY
}

r0="$OUT/round0"
mkdir -p "$r0"
step "$r0/backward" gen train "${seed_args[@]}" --base "$BASE" --direction backward --out "$r0/backward" $TRAIN_FLAGS
step "$r0/model" gen train "${seed_args[@]}" --base "$BASE" --out "$r0/model" $TRAIN_FLAGS
if [ -n "$BACKWARD_BASE_URL" ]; then
  backward_args=(--backend openai --base-url "$BACKWARD_BASE_URL" --model "$BACKWARD_MODEL")
else
  backward_args=(--backend "$BACKEND" --model "$BASE" --adapter "$r0/backward")
fi
step "$r0/augment" gen backtranslate --corpus "$CORPUS" ${CORPUS_DIR:+--corpus-dir "$CORPUS_DIR"} \
  ${CORPUS_LIMIT:+--limit "$CORPUS_LIMIT"} "${backward_args[@]}" --out "$r0/augment" $AUGMENT_FLAGS
if [ ! -s "$r0/augment/data.jsonl" ]; then
  echo "== backtranslation kept no candidates (see $r0/augment/rejected.jsonl); nothing to curate" >&2
  gen report "$OUT"
  exit 1
fi

prev="$r0/model"
for k in $(seq 1 "$ROUNDS"); do
  rk="$OUT/round$k"
  mkdir -p "$rk"
  # shellcheck disable=SC2046
  step "$rk/curate" gen curate --input "$r0/augment/data.jsonl" $(rater_args "$prev") \
    --threshold "$THRESHOLD" --out "$rk/curate" $CURATE_FLAGS
  curated=()
  if [ -s "$rk/curate/data.jsonl" ]; then
    curated=(--data "$rk/curate/data.jsonl")
  else
    echo "== round $k kept no candidates; M$k is trained on the seed alone"
  fi
  step "$rk/model" gen train "${seed_args[@]}" "${curated[@]}" --base "$BASE" --out "$rk/model" $TRAIN_FLAGS
  lineage "$rk" "${JUDGE_MODEL:-$prev}" "$SEED" "$BASE"
  prev="$rk/model"
done

gen report "$OUT"
echo "rounds done: adapters in $OUT/round*/model, report in $OUT/report.md"
