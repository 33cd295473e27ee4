#!/usr/bin/env bash
# Publish-ack latency with K gateways on one store (docs/benchmarks.md, "Several gateways"):
# K gateways on a fresh local directory, each injecting the jittered s3-standard latency
# profile into its store calls, and `ferrymq bench` spreading single-message publishes from
# PRODUCERS connections (default 64) over all of them for DURATION.
#
# usage: scripts/bench-gateways.sh <ferrymq binary> <K> <DURATION> [PRODUCERS]
#   EXTRA="--max-inflight-batches 4" adds serve flags.
BIN=$1; K=$2; DUR=$3; P=${4:-64}
D=${DATA:-/tmp/ferrymq-bench-gateways}; rm -rf $D; mkdir -p $D
export FERRYMQ_JWT_SECRET=benchsecret
PIDS=(); URLS=()
for i in $(seq 0 $((K-1))); do
  PORT=$((18200+i))
  $BIN serve --store file://$D --listen 127.0.0.1:$PORT --store-profile s3-standard --log warn $EXTRA >/tmp/ferrymq-bench-gateways-$i.log 2>&1 &
  PIDS+=($!); URLS+=(http://127.0.0.1:$PORT)
  until curl -fs http://127.0.0.1:$PORT/readyz >/dev/null; do sleep 0.1; done
  sleep 0.5
done
T=$($BIN token)
U=$(IFS=,; echo "${URLS[*]}")
$BIN bench --url $U --token $T --producers $P --batch 1 --duration $DUR 2>/dev/null | grep -E "throughput|publish-ack|errors|store requests"
kill ${PIDS[@]}; wait 2>/dev/null
