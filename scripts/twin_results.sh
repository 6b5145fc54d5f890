#!/usr/bin/env bash
# The GPU what-ifs of the results page's twin section (traces/RESULTS.md), all simulated by
# the vLLM twin, in the Sutradhara paper's setting: Qwen3-14B, 256-token chunks (the token
# budget per step), the synthetic web-search workload with the paper's shape (56 requests,
# 2-6 LLM calls, tools sleeping recorded latency x 3.1), Poisson 0.5-4 requests/s.
#   a100     A100-80GB: baseline, each switch alone, all
#   speed    A100-80GB: baseline and all only, timed (the twin's speed target: < 10 min)
#   a100wide A100-80GB, baseline and all at 0.5 and 4-16 requests/s: 56 requests do not
#            reach the FTR target by 4/s, so the paper's range gives no load at the target
#   a100x40  A100-40GB: the same model in half the memory (a sixth of the KV cache), so the
#            cache is under pressure; baseline, each switch alone, all, three arrival draws
#   h100     H100-80GB: baseline, each switch alone, all
#   h100x8   8 replicas' worth of load (8x the requests and the rates) on one H100 engine
#            whose KV budget is 8x larger (--kv-scale 8; --tensor-parallel 8 would also give
#            it 8 GPUs' compute): baseline, each switch alone, all
# Simulated results do not depend on the machine's load, so this may run on a shared
# machine; only the speed figures do. No engine lock is needed (no model runs).
#
# Environment: PYTHON (default .venv/bin/python), OUT (default traces/results/twin), PAGE
# (default traces/RESULTS.md), SEED (0), ONLY (space-separated subset of the sweeps),
# VALIDATION_DIR (the folder of *-comparison.md tables; see below).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-traces/results/twin}
PAGE=${PAGE:-traces/RESULTS.md}
SEED=${SEED:-0}
ONLY=${ONLY:-a100 speed a100wide a100x40 h100 h100x8}
ALL_MODES=baseline,token_log,stream_tools,split_prefill,cache_hints,run_priority,all
LOGS=${TMPDIR:-/tmp}/agentrt-twin-logs
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL=WARNING
mkdir -p "$OUT" "$LOGS"

# One sweep: the replay's report in $OUT/<name>, its whole wall time in sweep.json.
sweep() {
  local name=$1
  shift
  case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name ($(date +%T))" >&2
  rm -rf "${OUT:?}/$name"
  local start=$SECONDS
  "$PYTHON" -m agentrt replay --synthetic --tool-factor 3.1 --seed "$SEED" \
    --ftr-target-factor 1.25 --engine twin "$@" --out "$OUT/$name" >"$LOGS/$name.log" 2>&1 ||
    { tail -n 30 "$LOGS/$name.log" >&2; return 1; }
  echo "{\"command_wall_s\": $((SECONDS - start))}" >"$OUT/$name/sweep.json"
  echo "   $((SECONDS - start)) s" >&2
}

sweep a100 --profile a100-80gb --max-num-batched-tokens 256 --rates 0.5,1,2,3,4 \
  --modes "$ALL_MODES" --title "Qwen3-14B on A100-80GB, 256-token chunks (simulated)"
sweep speed --profile a100-80gb --max-num-batched-tokens 256 --rates 0.5,1,2,3,4 \
  --modes baseline,all --title "Speed check: A100-80GB sweep, baseline and all (simulated)"
sweep a100wide --profile a100-80gb --max-num-batched-tokens 256 --rates 0.5,4,8,12,16 \
  --modes baseline,all --title "Qwen3-14B on A100-80GB beyond the paper's loads (simulated)"
sweep a100x40 --profile a100-40gb --max-num-batched-tokens 256 --rates 0.5,1,2,3,4,6,8 \
  --repeats 3 --modes "$ALL_MODES" \
  --title "Qwen3-14B on A100-40GB: a sixth of the KV cache, 256-token chunks (simulated)"
sweep h100 --profile h100-80gb --max-num-batched-tokens 256 --rates 0.5,1,2,3,4 \
  --modes "$ALL_MODES" --title "Qwen3-14B on H100-80GB, 256-token chunks (simulated)"
sweep h100x8 --profile h100-80gb --kv-scale 8 --max-num-batched-tokens 256 \
  --synthetic-requests 448 --rates 4,8,16,24,32 --modes "$ALL_MODES" \
  --title "8 replicas' load on one H100 engine with 8x the KV cache, 256-token chunks (simulated)"

whatifs=()
for name in a100 a100wide a100x40 h100 h100x8 speed; do
  [ -f "$OUT/$name/report.json" ] && whatifs+=(--whatif "$OUT/$name")
done
validations=()
# The validation tables: a fresh scripts/twin_validate.sh run if there is one, else the
# latest committed one.
if [ -z "${VALIDATION_DIR:-}" ]; then
  VALIDATION_DIR=runs/twin-validation
  [ -d "$VALIDATION_DIR" ] || VALIDATION_DIR=traces/results/twin-validation/2026-12-05-fourth-run-bf16
fi
for f in "$VALIDATION_DIR"/*-comparison.md; do
  [ -f "$f" ] && validations+=(--validation "$f")
done
# --slim: the page needs the per-run summaries only; per-request records weigh tens of MB.
"$PYTHON" -m agentrt.replay.report._twin_page "$PAGE" --slim "${whatifs[@]}" "${validations[@]}"
echo "done ($(date +%T))" >&2
