#!/usr/bin/env bash
# Publish throughput and latency of one gateway on a fresh fsynced local directory
# (docs/benchmarks.md, "Gateway"): PRODUCERS connections publishing BATCH messages of SIZE
# bytes per request for DURATION, optionally with CONSUMERS receiving.
#
# usage: scripts/bench-local.sh <ferrymq binary> <PRODUCERS> <BATCH> <DURATION> [SIZE] [CONSUMERS]
#   EXTRA="--max-deltas-in-flight 1" adds serve flags (EXTRA="--store-profile s3-standard":
#   S3 latencies); MODE=pull|group picks how consumers read (default group); RATE=<msg/s>
#   caps the publish rate; MSG_GROUPS=<n> publishes to a FIFO topic with n message groups;
#   BENCH_BIN=<binary> runs the bench client from another build; PORT=<port> listens there
#   instead of 18300 (for benchmarks run beside another on one machine).
#
# Each run gets a fresh directory, deleted afterwards unless KEEP=1. On ext4 without a journal
# (this machine's disk) creating a file skips every inode freed in the last minutes, so
# deleting a previous run's ~100,000 files just before a run makes each create 20x slower (0.3
# vs 0.015 ms) and the run ~20% slower: for A/B rounds set KEEP=1 and remove
# /tmp/ferrymq-bench-local.* afterwards (a 60 s run of 16 x 100 writes ~9 GB).
BIN=$1; P=$2; B=$3; DUR=$4; SIZE=${5:-1024}; C=${6:-0}; PORT=${PORT:-18300}
D=${DATA:-$(mktemp -d /tmp/ferrymq-bench-local.XXXXXX)}; mkdir -p $D
export FERRYMQ_JWT_SECRET=benchsecret
$BIN serve --store file://$D --listen 127.0.0.1:$PORT --log warn $EXTRA >/tmp/ferrymq-bench-local-$PORT.log 2>&1 &
PID=$!
until curl -fs http://127.0.0.1:$PORT/readyz >/dev/null; do sleep 0.1; done
T=$($BIN token)
${BENCH_BIN:-$BIN} bench --url http://127.0.0.1:$PORT --token $T --producers $P --batch $B --message-size $SIZE --consumers $C ${MODE:+--consumer-mode $MODE} ${RATE:+--rate $RATE} ${MSG_GROUPS:+--message-groups $MSG_GROUPS} --duration $DUR 2>/dev/null | grep -Ev "^\s*$"
kill $PID; wait 2>/dev/null
[ "${KEEP:-0}" = 1 ] || rm -rf "$D"
