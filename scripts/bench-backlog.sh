#!/usr/bin/env bash
# A backlog far larger than the hot tail (docs/benchmarks.md, "A 20 GB backlog"): publishes N
# messages of SIZE bytes with `ferrymq bench` (RSS sampled every 2 s), then consumes from the
# oldest for CONSUME_SECS with 4 clients (receive 64 + ack), printing the gateway's RSS.
#
# usage: scripts/bench-backlog.sh <ferrymq binary> <N> <SIZE> <CONSUME_SECS>
#   e.g. scripts/bench-backlog.sh target/release/ferrymq 1280000 16384 90   (21 GB)
BIN=$1; N=$2; SIZE=$3; CONSUME_SECS=$4
D=${DATA:-/tmp/ferrymq-bench-backlog}; rm -rf $D; PORT=18300
export FERRYMQ_JWT_SECRET=s
$BIN serve --store file://$D --listen 127.0.0.1:$PORT --log warn --hot-tail-bytes 268435456 >/tmp/ferrymq-bench-backlog.log 2>&1 &
GW=$!
until curl -fs http://127.0.0.1:$PORT/readyz >/dev/null; do sleep 0.1; done
export T=$($BIN token)
( while kill -0 $GW 2>/dev/null; do ps -o rss= -p $GW; sleep 2; done ) > /tmp/ferrymq-bench-backlog-rss.txt &
S=$!
$BIN bench --url http://127.0.0.1:$PORT --token $T --producers 8 --batch 64 --message-size $SIZE --max-messages $N --duration 1200s 2>/dev/null | grep -E "published|throughput|publish-ack|errors"
kill $S
echo "publish RSS max $(sort -n /tmp/ferrymq-bench-backlog-rss.txt | tail -1) KiB; data $(du -sh $D/segments | cut -f1)"
curl -fs -X PUT -H "Authorization: Bearer $T" -H 'content-type: application/json' http://127.0.0.1:$PORT/v1/groups/backlog -d '{"subscriptions":[{"topic":"bench"}],"start_from":"earliest"}' >/dev/null
python3 "$(dirname "$0")/bench-backlog-consume.py" $PORT $CONSUME_SECS $GW
kill $GW
