#!/usr/bin/env bash
# Object-store requests and what they cost (docs/benchmarks.md, "Store requests per message"):
# K gateways on a fresh local directory, each injecting a store latency profile (`s3-standard`
# or `s3-express`), `ferrymq bench --producers 64 --batch 1 --rate RATE` spread over them for
# DURATION, and every gateway's /metrics read before and after the bench (started only once
# all are up and idle, so start-up requests do not count).
#
# usage: scripts/bench-cost.sh <ferrymq binary> <K> <RATE> <DURATION seconds> <PROFILE>
#   EXTRA="--linger 200ms ..." adds serve flags (a setting to measure); LABEL names the row;
#   PRODUCERS (default 64) and BATCH (default 1) shape the load: closed-loop producers need
#   rate x ack latency of them.
# Prints one CSV row:
#   label,profile,gateways,rate,msg_s,ack_p50_ms,ack_p99_ms,put_s,get_s,list_s,delete_s,req_s,usd_month
# usd_month: the month (30 days) of these requests at S3 prices (us-east-1, 2025): S3 Standard
# PUT/LIST $0.005 and GET $0.0004 per 1,000; S3 Express One Zone PUT/LIST $0.00113 and GET
# $0.00003 per 1,000 (its per-GB upload charge is left out); DELETE is free on both.
set -euo pipefail
if [ $# -lt 5 ]; then
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
fi
BIN=$(realpath "$1"); K=$2; RATE=$3; DUR=$4; PROFILE=$5
D=$(mktemp -d /tmp/ferrymq-bench-cost.XXXXXX)
export FERRYMQ_JWT_SECRET=benchsecret
PIDS=(); URLS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D" "$D".gw*.log; }
trap cleanup EXIT
for i in $(seq 0 $((K - 1))); do
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # shellcheck disable=SC2086 # EXTRA is a list of flags
  "$BIN" serve --store "file://$D" --listen "127.0.0.1:$PORT" --store-profile "$PROFILE" \
    --log warn ${EXTRA:-} >"$D.gw$i.log" 2>&1 &
  PIDS+=($!); URLS+=("http://127.0.0.1:$PORT")
  until curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.1; done
done
sleep 3
T=$("$BIN" token)
# Store requests by operation, summed over the gateways.
counts() {
  for u in "${URLS[@]}"; do curl -fs -H "authorization: Bearer $T" "$u/metrics"; done |
    awk '/^ferrymq_store_requests_total\{/ { match($0, /op="[a-z]+"/); op = substr($0, RSTART + 4, RLENGTH - 5); n[op] += $NF }
         END { printf "%d %d %d %d\n", n["put"], n["get"], n["list"], n["delete"] }'
}
read -r p0 g0 l0 d0 < <(counts)
U=$(IFS=,; echo "${URLS[*]}")
OUT=$("$BIN" bench --url "$U" --token "$T" --producers "${PRODUCERS:-64}" --batch "${BATCH:-1}" --rate "$RATE" --duration "${DUR}s" 2>/dev/null)
read -r p1 g1 l1 d1 < <(counts)
python3 - "$OUT" "${LABEL:-run}" "$PROFILE" "$K" "$RATE" "$DUR" $((p1 - p0)) $((g1 - g0)) $((l1 - l0)) $((d1 - d0)) <<'PY'
import re, sys
out, label, profile, k, rate, dur = sys.argv[1:7]
put, get, lst, dele = (int(x) / float(dur) for x in sys.argv[7:11])
tput = re.search(r"publish throughput: (\d+) msg/s", out)
lat = re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms", out)
if not (tput and lat):
    sys.exit("the bench printed no figures:\n" + out)
price = {"s3-express": (0.00113, 0.00003)}.get(profile, (0.005, 0.0004))
month = 30 * 86400
usd = ((put + lst) * price[0] + get * price[1]) / 1000 * month
print(f"{label},{profile},{k},{rate},{tput[1]},{lat[1]},{lat[2]},{put:.1f},{get:.1f},{lst:.2f},{dele:.1f},"
      f"{put + get + lst + dele:.1f},{usd:.0f}")
PY
