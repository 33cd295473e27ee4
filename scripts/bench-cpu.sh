#!/usr/bin/env bash
# scripts/bench-local.sh plus where the CPU went: the CPU seconds of the gateway and of the
# bench client, and the host's steal over the run; PERF=<secs> also records a profile of the
# gateway (perf, 10 s into the run) into /tmp/perf.data (PERFG="--call-graph dwarf" for
# DWARF stacks).
#
# usage: scripts/bench-cpu.sh <ferrymq binary> <PRODUCERS> <BATCH> <DURATION> [SIZE] [CONSUMERS]
#   env as scripts/bench-local.sh: RATE, MODE, MSG_GROUPS, EXTRA, BENCH_BIN. The data directory
#   is kept (KEEP=0 deletes it): deleting just before the next run slows its file creates
#   (see scripts/bench-local.sh); remove /tmp/ferrymq-bench-local.* after the session.
BIN=$1; P=$2; B=$3; DUR=$4; SIZE=${5:-1024}; C=${6:-0}
D=$(mktemp -d /tmp/ferrymq-bench-local.XXXXXX)
export FERRYMQ_JWT_SECRET=benchsecret
$BIN serve --store file://$D --listen 127.0.0.1:18300 --log warn $EXTRA >/tmp/ferrymq-bench-local.log 2>&1 &
PID=$!
until curl -fs http://127.0.0.1:18300/readyz >/dev/null; do sleep 0.1; done
T=$($BIN token)
st0=$(grep '^cpu ' /proc/stat | awk '{print $9, $2+$3+$4+$5+$6+$7+$8+$9}')
(
  /usr/bin/time -f "bench client cpu: user %U s, sys %S s" ${BENCH_BIN:-$BIN} bench --url http://127.0.0.1:18300 \
    --token $T --producers $P --batch $B --message-size $SIZE --consumers $C ${MODE:+--consumer-mode $MODE} \
    ${RATE:+--rate $RATE} ${MSG_GROUPS:+--message-groups $MSG_GROUPS} --duration $DUR 2>&1 >$D.out | grep "bench client"
  grep -Ev "^\s*$" $D.out; rm -f $D.out
) &
BP=$!
if [ -n "$PERF" ]; then
  sleep 10
  perf record -F 199 ${PERFG:--g} -p $PID -o /tmp/perf.data -- sleep $PERF >/dev/null 2>&1
fi
wait $BP
st1=$(grep '^cpu ' /proc/stat | awk '{print $9, $2+$3+$4+$5+$6+$7+$8+$9}')
echo "steal: $(echo $st0 $st1 | awk '{printf "%.1f%%", 100*($3-$1)/($4-$2)}')"
awk '{printf "gateway cpu: user %.1f s, sys %.1f s\n", $14/100, $15/100}' /proc/$PID/stat
kill $PID; wait $PID 2>/dev/null
[ "${KEEP:-1}" = 1 ] || rm -rf "$D"
