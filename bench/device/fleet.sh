#!/usr/bin/env bash
# The fleet check of issue #18, for a machine with cores to spare (the 16-core device machine): run
# from the repository root with dist/ and node_modules present, and nginx and redis-server installed
# (the device machine reaches no network: they must already be there). Writes to $OUT/ (default
# ./bench-out): path.txt (bench/fleet_path_ab.mjs: one replica directly and behind nginx with and
# without upstream keep-alive, tokens/s and CPU per token of each process) and fleet.jsonl (`attn
# bench fleet --config S`, the goal: two replicas behind nginx, 32 streaming clients, one replica
# SIGKILLed, against one replica), each part's stderr, and summary.txt. About 5 minutes in all;
# each part has its own timeout, and a part that fails leaves the others to run.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-./bench-out}"
mkdir -p "$OUT"
THREADS="${THREADS:-2}"
{
  echo "== machine"
  nproc
  command -v nginx redis-server || echo "nginx or redis-server is missing: the fleet cannot run here"
} | tee "$OUT/summary.txt"

echo "== the balancer's path: one replica, $THREADS threads, 3 rounds of 20 s" | tee -a "$OUT/summary.txt"
timeout 240 node bench/fleet_path_ab.mjs 3 20 32 "$THREADS" > "$OUT/path.txt" 2> "$OUT/path.stderr"
echo "fleet_path_ab rc=$?" | tee -a "$OUT/summary.txt"
grep -E 'median' "$OUT/path.txt" | tee -a "$OUT/summary.txt"

echo "== attn bench fleet --config S --threads $THREADS (twice)" | tee -a "$OUT/summary.txt"
for i in 1 2; do
  timeout 120 node dist/src/cli/main.js bench fleet --config S --threads "$THREADS" --client-threads 4 \
    --duration 40 --kill-at 25 --baseline 15 --json >> "$OUT/fleet.jsonl" 2>> "$OUT/fleet.stderr"
  echo "bench fleet rc=$?" | tee -a "$OUT/summary.txt"
done
node -e '
  for (const line of require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")) {
    if (!line.startsWith("{")) continue;
    const r = JSON.parse(line);
    console.log(`ratio ${r.speedup_before_kill.toFixed(2)}x (baseline ${r.baseline_tokens_per_s}, fleet ${r.fleet_tokens_per_s_before_kill} tok/s), survivor/baseline ${r.after_kill_per_replica_vs_baseline?.toFixed(2)}, failed after kill ${r.failed_started_after_kill}, ledger ok ${r.ledger_matches_clients}`);
  }' "$OUT/fleet.jsonl" 2>&1 | tee -a "$OUT/summary.txt"
