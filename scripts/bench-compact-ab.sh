#!/usr/bin/env bash
# Alternating A/B rounds of the compactor benchmark (compactor/examples/archive_bench.rs), one
# line per run with the host's CPU steal and idle time during it (this machine is a VM whose
# neighbours take some of its CPU: compare runs with similar steal, and report medians).
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
    read -ra s0 <<< "$(cpu)"
    # shellcheck disable=SC2086 # envs is a list of VAR=value words
    out=$(env $envs "$bin" "$N" "$dir" 2>&1)
    read -ra s1 <<< "$(cpu)"
    rm -rf "$dir"
    total=0; for i in 1 2 3 4 5 6 7 8; do total=$((total + s1[i] - s0[i])); done
    steal=$(( (s1[8] - s0[8]) * 1000 / total ))
    idle=$(( (s1[4] + s1[5] - s0[4] - s0[5]) * 1000 / total ))
    line=$(grep -oP 'compaction: \K.*' <<< "$out")
    echo "$r $label $line; steal=${steal}‰ idle=${idle}‰ (whole run)"
  done
done
