#!/usr/bin/env bash
# Push delivery (docs/benchmarks.md, "Push delivery"): K gateways on a fresh local directory,
# `ferrymq bench` publishing at RATE msg/s (16 producers x batch 10, 1 KiB bodies) for
# DURATION while the gateways push every message to a loopback receiver in the bench that
# answers 204 at once (a push group with max_in_flight IN_FLIGHT, default 64). Prints publish
# and push throughput, end-to-end latency publish -> receiver, and store requests.
#
# usage: scripts/bench-push.sh <ferrymq binary> <K> <RATE> <DURATION> [IN_FLIGHT]
#   PROFILE=s3-standard injects that latency profile into every gateway's store calls;
#   EXTRA="..." adds serve flags.
BIN=$1; K=$2; RATE=$3; DUR=$4; INF=${5:-64}
D=$(mktemp -d /tmp/ferrymq-bench-push.XXXXXX)
export FERRYMQ_JWT_SECRET=benchsecret
PIDS=(); URLS=()
for i in $(seq 0 $((K-1))); do
  PORT=$((18400+i))
  $BIN serve --store file://$D --listen 127.0.0.1:$PORT ${PROFILE:+--store-profile $PROFILE} --log warn $EXTRA >/tmp/ferrymq-bench-push-$i.log 2>&1 &
  PIDS+=($!); URLS+=(http://127.0.0.1:$PORT)
  until curl -fs http://127.0.0.1:$PORT/readyz >/dev/null; do sleep 0.1; done
done
T=$($BIN token)
U=$(IFS=,; echo "${URLS[*]}")
$BIN bench --url $U --token $T --producers 16 --batch 10 --rate $RATE --consumers $INF --consumer-mode push --duration $DUR 2>/dev/null | grep -E "throughput|publish-ack|received|errors|store requests"
for u in "${URLS[@]}"; do
  echo "pushes by $u: $(curl -fs $u/metrics | grep '^ferrymq_push_deliveries_total' | tr '\n' ' ')"
done
kill ${PIDS[@]}; wait 2>/dev/null
rm -rf "$D"
