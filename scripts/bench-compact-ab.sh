#!/usr/bin/env bash
# Alternating A/B rounds of the compactor benchmark (compactor/examples/archive_bench.rs), one
# line per run: its throughput line, the pass's CPU time (`perf stat -e task-clock`, all
# threads, attached when the benchmark has published and stopped when the pass is done, so
# older binaries that do not print their own CPU are measured the same way), and the host's
# CPU steal and idle time during the pass (this machine is a VM shared with other work:
# compare runs with similar idle time, and report medians).
#
# usage: scripts/bench-compact-ab.sh <rounds> <messages> <spec>...
#   spec = "label|ENV=VAL ...|<archive_bench binary>", e.g.
#   scripts/bench-compact-ab.sh 3 1000000 "base||/tmp/bench-base" "new||/tmp/bench-new" \
#       "new-1-file|FERRYMQ_BENCH_OPEN_FILES=1|/tmp/bench-new"
# Build a binary with `cargo build --release -p compactor --example archive_bench` (it lands in
# target/release/examples/archive_bench; copy it aside before building another version).
# Each run publishes into a fresh temporary directory (not timed), then times one pass.
set -uo pipefail
R=$1; N=$2; shift 2
cpu() { head -1 /proc/stat; }
for r in $(seq "$R"); do
  for spec in "$@"; do
    IFS='|' read -r label envs bin <<< "$spec"
    dir=$(mktemp -d /tmp/ferrymq-bench-compact.XXXXXX)
    # shellcheck disable=SC2086 # envs is a list of VAR=value words
    env $envs "$bin" "$N" "$dir" > "$dir.out" 2> "$dir.err" &
    pid=$!
    until grep -q published "$dir.err" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    read -ra s0 <<< "$(cpu)"
    perf stat -e task-clock -p "$pid" -o "$dir.stat" > /dev/null 2>&1 &
    pp=$!
    until grep -q compaction "$dir.out" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    read -ra s1 <<< "$(cpu)"
    kill -INT "$pp" 2>/dev/null; wait "$pp"
    wait "$pid"
    total=0; for i in 1 2 3 4 5 6 7 8; do total=$((total + s1[i] - s0[i])); done
    steal=$(( (s1[8] - s0[8]) * 1000 / total ))
    idle=$(( (s1[4] + s1[5] - s0[4] - s0[5]) * 1000 / total ))
    line=$(grep -oP 'compaction: \K[^;]*' "$dir.out")
    mb=$(grep -oP '[0-9.]+(?= MB message bytes)' "$dir.out")
    ms=$(grep -oP '[0-9.]+(?= msec task-clock)' "$dir.stat")
    size=$(grep -oP 'size: Parquet \K[0-9.]+ MB' "$dir.out")
    per_mb=$(awk -v ms="$ms" -v mb="$mb" 'BEGIN { printf "%.1f", ms / mb }')
    echo "$r $label $line; CPU ${ms} ms = ${per_mb} ms per MB; Parquet $size; steal=${steal}‰ idle=${idle}‰"
    rm -rf "$dir" "$dir.out" "$dir.err" "$dir.stat"
  done
done
