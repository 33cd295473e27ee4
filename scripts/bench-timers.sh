#!/usr/bin/env bash
# Start-up with a backlog of delayed messages (docs/benchmarks.md, "1,000,000 delayed messages").
# Publishes N delayed messages (due 1 h to 39 days ahead; RANDOM_ORDER=1 shuffles the due
# times) to a fresh gateway, waits for the timer spill keeper and the next checkpoint, then
# SIGKILLs and restarts it three times, printing the time to /readyz and the RSS.
#
# usage: scripts/bench-timers.sh <ferrymq binary> <N> [extra serve flags...]
#   STORE=s3://bucket/prefix (with the AWS_* variables of an S3 server) instead of a local dir;
#   KEEP=all with --timer-keep-inline above N for the all-inline baseline.
BIN=$1; N=$2; shift 2
D=${DATA:-/tmp/ferrymq-bench-timers}; rm -rf $D; PORT=18111; STORE=${STORE:-file://$D}
export FERRYMQ_JWT_SECRET=s
$BIN serve --store $STORE --listen 127.0.0.1:$PORT --log warn "$@" >/tmp/ferrymq-bench-timers.log 2>&1 &
GW=$!
until curl -fs http://127.0.0.1:$PORT/readyz >/dev/null; do sleep 0.1; done
export T=$($BIN token)
curl -fs -X PUT -H "Authorization: Bearer $T" -H 'content-type: application/json' http://127.0.0.1:$PORT/v1/topics/d -d '{"type":"delay","queues":8}' >/dev/null
python3 "$(dirname "$0")/bench-timers-publish.py" $PORT $N $RANDOM_ORDER
for i in $(seq 1 600); do
  C=$(curl -fs -H "Authorization: Bearer $T" http://127.0.0.1:$PORT/v1/cluster)
  echo "$C" | python3 -c 'import json,sys; c=json.load(sys.stdin)["delayed_messages"]; sys.exit(0 if c["inline"]<=24096 or c["spilled"]==0 and c["inline"]>24096 and "'$KEEP'"=="all" else 1)' && break
  sleep 1
done
echo "after publishing: $(echo $C | python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["manifest_version"], c["delayed_messages"])')"
# Wait for the next checkpoint (every 500 versions; an idle sequencer heartbeats every second).
V=$(echo $C | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest_version"])')
TARGET=$(( (V/500+1)*500 + 2 ))
for i in $(seq 1 900); do
  V=$(curl -fs -H "Authorization: Bearer $T" http://127.0.0.1:$PORT/v1/cluster | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest_version"])')
  [ "$V" -ge "$TARGET" ] && break
  # Nudge the log along with small publishes to another topic.
  curl -fs -X PUT -H "Authorization: Bearer $T" -H 'content-type: application/json' http://127.0.0.1:$PORT/v1/topics/nudge -d '{"queues":1}' >/dev/null
  for j in $(seq 1 20); do curl -fs -o /dev/null -X POST -H "Authorization: Bearer $T" -H 'content-type: application/json' http://127.0.0.1:$PORT/v1/topics/nudge/messages -d '{"messages":[{"body":"x"}]}'; done
done
echo "version $V"
sleep 2
kill -9 $GW; wait $GW 2>/dev/null
ls -la $D/manifest/checkpoints | tail -2
du -sh $D/manifest/checkpoints $D/timers 2>/dev/null
for k in 1 2 3; do
  S=$(date +%s%N)
  $BIN serve --store $STORE --listen 127.0.0.1:$PORT --log warn "$@" >/tmp/ferrymq-bench-timers.log 2>&1 &
  GW=$!
  until curl -fs http://127.0.0.1:$PORT/readyz >/dev/null; do sleep 0.02; done
  E=$(date +%s%N)
  echo "start-up $k: $(( (E-S)/1000000 )) ms to /readyz; RSS $(ps -o rss= -p $GW) KiB"
  curl -fs -H "Authorization: Bearer $T" http://127.0.0.1:$PORT/v1/cluster | python3 -c 'import json,sys; c=json.load(sys.stdin); print("  ", c["delayed_messages"])'
  kill -9 $GW; wait $GW 2>/dev/null
done
