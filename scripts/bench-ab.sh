#!/usr/bin/env bash
# Alternating A/B rounds of scripts/bench-local.sh, one line per run with the host's CPU steal
# and idle time during it (this machine is a VM whose neighbours take up to ~12% of its CPU;
# compare runs with similar steal, and report medians).
#
# usage: scripts/bench-ab.sh <rounds> <producers> <batch> <duration> <spec>...
#   spec = "label|ENV=VAL ...|<ferrymq binary>|<extra serve flags>", e.g.
#   scripts/bench-ab.sh 3 64 1 20s "main||./ferrymq-main|" "two||./ferrymq-main|--max-inflight-batches 2"
# BENCH_BIN (default: the first spec's binary) drives every run, so only the gateway differs.
# Each run starts after `sync; echo 1 > /proc/sys/vm/drop_caches` (needs root) and keeps its
# data directory (KEEP=1): remove /tmp/ferrymq-bench-local.* afterwards, not between runs.
set -uo pipefail
R=$1; P=$2; B=$3; DUR=$4; shift 4
HERE=$(cd "$(dirname "$0")" && pwd)
IFS='|' read -r _ _ first _ <<< "$1"
CLIENT=${BENCH_BIN:-$first}
cpu() { head -1 /proc/stat; }
for r in $(seq "$R"); do
  for spec in "$@"; do
    IFS='|' read -r label envs bin extra <<< "$spec"
    sync; echo 1 > /proc/sys/vm/drop_caches
    read -ra s0 <<< "$(cpu)"
    # shellcheck disable=SC2086 # envs is a list of VAR=value words
    out=$(env $envs KEEP=1 BENCH_BIN="$CLIENT" EXTRA="$extra" "$HERE/bench-local.sh" "$bin" "$P" "$B" "$DUR" 2>&1)
    read -ra s1 <<< "$(cpu)"
    total=0; for i in 1 2 3 4 5 6 7 8; do total=$((total + s1[i] - s0[i])); done
    steal=$(( (s1[8] - s0[8]) * 1000 / total ))
    idle=$(( (s1[4] + s1[5] - s0[4] - s0[5]) * 1000 / total ))
    rate=$(grep -oP 'throughput: \K[0-9]+' <<< "$out")
    lat=$(grep -oP 'latency: \K.*(?= \(per)' <<< "$out")
    req=$(grep -oP '\(\K[0-9.]+(?= per 1,000)' <<< "$out")
    echo "$r $label rate=$rate msg/s, $lat, steal=${steal}‰ idle=${idle}‰ store req/1k msgs=$req"
  done
done
