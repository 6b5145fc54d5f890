#!/usr/bin/env bash
# Validate the vLLM twin against the real embedded engine on this machine (issue 13):
#   1. `agentrt engine profile` of the embedded engine (the settings of scripts/results.sh:
#      128 MiB of KV cache, 32-token blocks, 2,560-token context);
#   2. the synthetic web-search workload and the WEKA subset of scripts/results.sh, each
#      replayed on the real engine and on the twin with that profile: same trace, seed
#      and arrivals, modes baseline / each switch / all, three loads;
#   3. per workload, the comparison table (twin within 15% of the real median FTR per
#      (mode, load), and the same sign for every mode's change against the baseline).
#
# Needs a quiet machine: the profile and the real replays are wall-clock measurements
# (the twin's runs are simulated and do not care). Every real-engine step takes the
# shared engine lock. Duration on the 2-core machine: ~100 minutes of real replays (eight
# modes, three repeats) plus ~10 minutes of profile; the twin runs take a few minutes.
#
# Environment: PYTHON (default .venv/bin/python), OUT (default runs/twin-validation),
# WEKA_DIR, SEED (0), MODES (all seven, then baseline_again: the A/A control whose change
# is the machine's run-to-run noise), WEB_RATES (0.25,0.5,1), WEKA_RATES (0.2,0.4,0.8),
# REPEATS (3; the real replays take REPEATS times as long),
# WEB_REQUESTS (16), WEKA_REQUESTS (8), PROFILE (an existing profile: skip step 1),
# QUICK=1 (a quick profile grid), LOCK (default /work/wt/engine.lock; "none" for no lock),
# SMOKE=1 (a smoke test of the script itself, ~10 minutes here: a quick profile, modes
# baseline and all, one load, 3 web-search and 2 WEKA requests, OUT=/tmp/twin-smoke; its
# verdict means nothing, only that every step runs and writes its table).
# Exit status: 0 when both workloads pass both criteria, 1 when one fails, 2 on an error.
# Then `ONLY=none scripts/twin_results.sh` puts the comparison tables on traces/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SMOKE:-}" = 1 ]; then
  : "${QUICK:=1}" "${MODES:=baseline,all}" "${WEB_RATES:=0.5}" "${WEKA_RATES:=0.4}"
  : "${WEB_REQUESTS:=3}" "${WEKA_REQUESTS:=2}" "${OUT:=/tmp/twin-smoke}" "${REPEATS:=1}"
fi
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/twin-validation}
WEKA_DIR=${WEKA_DIR:-/work/shared/traces/weka-claude-code}
SEED=${SEED:-0}
MODES=${MODES:-baseline,token_log,stream_tools,split_prefill,cache_hints,run_priority,all,baseline_again}
WEB_RATES=${WEB_RATES:-0.25,0.5,1}
WEKA_RATES=${WEKA_RATES:-0.2,0.4,0.8}
WEB_REQUESTS=${WEB_REQUESTS:-16}
WEKA_REQUESTS=${WEKA_REQUESTS:-8}
LOCK=${LOCK:-/work/wt/engine.lock}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL=WARNING

locked() {
  if [ "$LOCK" = none ]; then "$@"; else flock "$LOCK" "$@"; fi
}

mkdir -p "$OUT"
ENGINE=(--block-size 32 --max-model-len 2560)
REPEATS=${REPEATS:-3}
# Repeats: each draws its own arrivals (the twin replays the same draws). A switch's real
# effect is judged against the run-to-run noise they show (see _twin_compare).
COMMON=(--modes "$MODES" --seed "$SEED" --ftr-target-factor 1.25 --run-timeout 200 --no-plots
  --repeats "$REPEATS")
WEB=(--synthetic --synthetic-requests "$WEB_REQUESTS" --synthetic-calls 2,3 --token-scale 1/8
  --tool-factor 3.1 --rates "$WEB_RATES")
WEKA=(--weka "$WEKA_DIR" --max-conversations 24 --token-scale 1/64 --max-tool-latency 2
  --min-calls 2 --max-calls 4 --max-context 1200 --max-requests "$WEKA_REQUESTS" --tool-factor 1
  --rates "$WEKA_RATES")

PROFILE=${PROFILE:-}
if [ -z "$PROFILE" ]; then
  PROFILE=$OUT/profile.json
  echo "== engine profile ($(date +%T))" >&2
  locked "$PYTHON" -m agentrt engine profile --kv-cache-mib 128 "${ENGINE[@]}" \
    ${QUICK:+--quick} --out "$PROFILE" | tee "$OUT/profile.md"
fi

verdicts=()
failed=0
for name in websearch weka; do
  if [ "$name" = websearch ]; then WORK=("${WEB[@]}"); else WORK=("${WEKA[@]}"); fi
  echo "== $name: real engine ($(date +%T))" >&2
  locked "$PYTHON" -m agentrt replay "${WORK[@]}" "${COMMON[@]}" --engine embedded \
    --kv-cache-bytes 128MiB "${ENGINE[@]}" --out "$OUT/$name-real" >"$OUT/$name-real.log" 2>&1 ||
    { tail -n 30 "$OUT/$name-real.log" >&2; exit 2; }
  echo "== $name: twin ($(date +%T))" >&2
  "$PYTHON" -m agentrt replay "${WORK[@]}" "${COMMON[@]}" --engine twin \
    --profile "$PROFILE" "${ENGINE[@]}" --out "$OUT/$name-twin" >"$OUT/$name-twin.log" 2>&1 ||
    { tail -n 30 "$OUT/$name-twin.log" >&2; exit 2; }
  status=0
  "$PYTHON" -m agentrt.replay.report._twin_compare "$OUT/$name-real" "$OUT/$name-twin" \
    --title "Twin vs real engine: $name" --out "$OUT/$name-comparison.md" --check || status=$?
  case $status in
    0) verdicts+=("$name: pass") ;;
    1) verdicts+=("$name: FAIL") failed=1 ;;
    *) exit "$status" ;;
  esac
done
echo "done ($(date +%T)): $OUT/*-comparison.md; ${verdicts[*]}" >&2
exit "$failed"
