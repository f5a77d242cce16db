#!/usr/bin/env bash
# Humpback's loop (instruction backtranslation, arXiv 2308.06259) as plain `gen` commands:
#
#   seed ─► M_yx (backward) and M0 (forward, seed only)
#   corpus ─► backtranslate with M_yx ─► candidates
#   round k = 1..ROUNDS: M_{k-1} rates the candidates ─► A_k (score >= THRESHOLD)
#                        M_k trained on seed + A_k, tagged seed / augmented
#   quality (gen eval, on seed pairs held out of all training): M_yx's instructions vs the real
#   ones; each M_k as a rater of true vs broken pairs; M_k vs M_{k-1} when a judge is set
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
HOLDOUT=${HOLDOUT:-auto}          # seed pairs held out of all training for `gen eval` (records seed): auto = 10%, 2..200; 0: none
EVAL_PAIRS=${EVAL_PAIRS:-}        # or a file of held-out pairs (records or {instruction, output}) never in the seed
EVAL_FLAGS=${EVAL_FLAGS:-}        # extra flags for every `gen eval`, e.g. "--max-tokens 64 --concurrency 16"
EVAL_CURATION_FLAGS=${EVAL_CURATION_FLAGS:-}  # extra `gen eval curation` flags, e.g. "--score-mode direct"
WINRATE_INSTRUCTIONS=${WINRATE_INSTRUCTIONS:-} # instructions for M_k vs M_{k-1} (default: the held-out ones); needs JUDGE_MODEL
WINRATE_FLAGS=${WINRATE_FLAGS:-}  # extra `gen eval winrate` flags
# ---------------------------------------------------------------------------------------------------

complete() { [ -f "$1/manifest.json" ] && grep -q '"status": *"complete"' "$1/manifest.json"; }

step() {  # step DIR command...: run the command unless DIR is already complete
  local dir=$1; shift
  if complete "$dir"; then echo "== skip $dir (complete)"; return; fi
  echo "== $*"
  "$@"
}

r0="$OUT/round0"
mkdir -p "$r0"

holdout() {  # holdout SEED N OUT_DIR: a deterministic split (by a hash of each record's id) into
  python3 - "$@" <<'PY'  # OUT_DIR/heldout.jsonl (N records) and OUT_DIR/seed_train.jsonl (the rest)
import hashlib, json, sys, pathlib
seed, want, out = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
lines = [l for l in seed.read_text("utf-8").splitlines() if l.strip()]
def key(line):
    obj = json.loads(line)
    ident = obj.get("id") or json.dumps(obj.get("messages"), sort_keys=True)
    return hashlib.sha256(str(ident).encode("utf-8")).hexdigest()
n = min(200, max(2, len(lines) // 10)) if want == "auto" else int(want)
n = n if len(lines) - n >= 2 else 0  # never leave the models without seed data
held = set(sorted(range(len(lines)), key=lambda i: key(lines[i]))[:n])
for name, keep in (("heldout.jsonl", True), ("seed_train.jsonl", False)):
    part = [lines[i] for i in range(len(lines)) if (i in held) == keep]
    tmp = out / f".{name}.tmp"
    tmp.write_text("".join(l + "\n" for l in part), "utf-8")
    tmp.replace(out / name)
print(f"== held out {n} of {len(lines)} seed pairs for gen eval: {out / 'heldout.jsonl'}")
PY
}

# The seed: a records file goes in as --data (less the held-out pairs), anything else through the
# Open Assistant loader (then only EVAL_PAIRS gives held-out pairs).
heldout="$EVAL_PAIRS"
if [[ "$SEED" == *.jsonl && -f "$SEED" ]] && head -c 4096 "$SEED" | grep -q '"messages"'; then
  if [ -z "$EVAL_PAIRS" ] && [ "$HOLDOUT" != 0 ]; then
    holdout "$SEED" "$HOLDOUT" "$r0"
    [ -s "$r0/heldout.jsonl" ] && heldout="$r0/heldout.jsonl"
    seed_args=(--data "$r0/seed_train.jsonl")
  else
    seed_args=(--data "$SEED")
  fi
else
  seed_args=(--seed-data "$SEED" --seed-limit "$SEED_LIMIT")
fi
[ -n "$heldout" ] || echo "== no held-out pairs (set EVAL_PAIRS, or use a records SEED): quality evals skipped"

quality() {  # quality DIR command...: a gen eval step; a failed eval is reported, the loop goes on
  [ -n "$heldout" ] || return 0
  step "$@" || echo "== $1 failed; the rounds go on without it (rerun to retry)" >&2
}

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

step "$r0/backward" gen train "${seed_args[@]}" --base "$BASE" --direction backward --out "$r0/backward" $TRAIN_FLAGS
step "$r0/model" gen train "${seed_args[@]}" --base "$BASE" --out "$r0/model" $TRAIN_FLAGS
if [ -n "$BACKWARD_BASE_URL" ]; then
  backward_args=(--backend openai --base-url "$BACKWARD_BASE_URL" --model "$BACKWARD_MODEL")
else
  backward_args=(--backend "$BACKEND" --model "$BASE" --adapter "$r0/backward")
fi
step "$r0/augment" gen backtranslate --corpus "$CORPUS" ${CORPUS_DIR:+--corpus-dir "$CORPUS_DIR"} \
  ${CORPUS_LIMIT:+--limit "$CORPUS_LIMIT"} "${backward_args[@]}" --out "$r0/augment" $AUGMENT_FLAGS
# shellcheck disable=SC2086
quality "$r0/eval-backward" gen eval backward --pairs "$heldout" "${backward_args[@]}" --out "$r0/eval-backward" $EVAL_FLAGS
# shellcheck disable=SC2086
quality "$r0/eval-curation" gen eval curation --pairs "$heldout" --backend "$BACKEND" --model "$BASE" \
  --adapter "$r0/model" --out "$r0/eval-curation" $EVAL_CURATION_FLAGS $EVAL_FLAGS
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
  # shellcheck disable=SC2086
  quality "$rk/eval-curation" gen eval curation --pairs "$heldout" --backend "$BACKEND" --model "$BASE" \
    --adapter "$rk/model" --out "$rk/eval-curation" $EVAL_CURATION_FLAGS $EVAL_FLAGS
  if [ -n "$JUDGE_MODEL" ]; then
    # shellcheck disable=SC2086
    quality "$rk/eval-winrate" gen eval winrate --instructions "${WINRATE_INSTRUCTIONS:-$heldout}" \
      --backend "$BACKEND" --model "$BASE" --adapter "$rk/model" --baseline-adapter "$prev" \
      --judge-model "$JUDGE_MODEL" ${JUDGE_BASE_URL:+--judge-base-url "$JUDGE_BASE_URL"} \
      --out "$rk/eval-winrate" $WINRATE_FLAGS $EVAL_FLAGS
  fi
  prev="$rk/model"
done

gen report "$OUT"
echo "rounds done: adapters in $OUT/round*/model, report in $OUT/report.md"
