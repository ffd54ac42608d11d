#!/bin/bash
# `make test` N times in a row on a fresh clone while one `pacer train` run loads both cores (issue 9).
#
#     bash benchmarks/test_under_load.sh [RUNS]      # default 5; about 10 minutes a run on 2 cores
#
# Prints one line per run (exit code, seconds, load averages, pytest's summary) and writes
# benchmarks/results/test-under-load-<date>.json. The clone is of this repository's HEAD.
set -u
RUNS=${1:-5}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/pacer-under-load-XXXX)
git clone -q "$REPO" "$WORK/clone" && cd "$WORK/clone" || exit 1
COMMIT=$(git rev-parse HEAD)
make setup > "$WORK/setup.log" 2>&1 || { echo "make setup failed: $WORK/setup.log"; exit 1; }
# the load: a run that never stops on its own (no step budget, no early stop)
setsid .venv/bin/pacer train --total-steps 10000000000 --time-limit 14400 --no-progress \
    --set runtime.stop_at_return=null --set log.tensorboard=false --run-dir "$WORK/load" > "$WORK/load.log" 2>&1 &
LOAD=$!
sleep 20
if ! kill -0 "$LOAD" 2>/dev/null; then echo "the load run is not running: $WORK/load.log"; exit 1; fi
LINES=()
for i in $(seq 1 "$RUNS"); do
  t0=$(date +%s)
  make test > "$WORK/test$i.log" 2>&1
  rc=$?
  t1=$(date +%s)
  kill -0 "$LOAD" 2>/dev/null || { echo "the load run ended during run $i: $WORK/load.log"; exit 1; }
  line="run $i exit $rc $((t1 - t0)) s load $(cut -d' ' -f1-3 /proc/loadavg) | $(grep -E '(passed|failed)' "$WORK/test$i.log" | tail -n 1)"
  echo "$line"
  LINES+=("$line")
done
kill -INT -- -"$LOAD"; sleep 10; kill -KILL -- -"$LOAD" 2>/dev/null
mkdir -p "$REPO/benchmarks/results"
OUT="$REPO/benchmarks/results/test-under-load-$(date +%Y%m%d-%H%M%S).json"
printf '%s\n' "${LINES[@]}" | python3 -c "
import json, os, sys, time
lines = [l.rstrip() for l in sys.stdin if l.strip()]
json.dump({'kind': 'test-under-load', 'date': time.strftime('%Y-%m-%d %H:%M:%S %z'), 'commit': '$COMMIT',
           'command': 'bash benchmarks/test_under_load.sh $RUNS', 'cores': os.cpu_count(),
           'load': 'pacer train --total-steps 1e10 (2 worker processes), started 20 s before the first run',
           'runs': lines}, open('$OUT', 'w'), indent=1)
"
echo "wrote $OUT (logs in $WORK)"
