#!/usr/bin/env bash
# Publishing and compaction together: one gateway on a fresh local directory compacts every
# INTERVAL (its own background compactor, Iceberg table included) while `ferrymq bench`
# publishes at a steady rate; every SAMPLE seconds the archive's lag is sampled: messages
# published to the topic (the sum of its queues' max offsets) minus the rows catalogued in the
# archive (`GET /v1/archive`). A flat lag means the archive keeps up at that rate.
#
# usage: scripts/archive-lag.sh <ferrymq binary> <minutes> <rate> [batch] [producers]
#   rate: messages/s in all; batch: messages per publish (default 100); producers (default 8).
# env: SAMPLE=<s> (default 30); INTERVAL=<duration> between passes (default 60s);
#   OUT=<file> the CSV (default /tmp/archive-lag.csv); MESSAGE_SIZE=<bytes> (bench default
#   1024); VARIED=1 sends every message a different random body (default: the same `x`s,
#   which compress to nothing); DATA=<dir> (default a fresh /tmp/ferrymq-lag.XXXXXX, deleted afterwards unless KEEP=1);
#   EXTRA="..." adds serve flags (default "--segment-grace 2m": segments a pass may delete
#   go after 2 minutes instead of an hour, so that the disk holds minutes of segments, not the run).
# The topic has retention_hours 0 and no group, so a pass frees the segments it archived:
#   the disk holds about the lag's segments plus the Parquet archive.
#
# CSV columns: elapsed_s, published (messages), archived (messages: each queue's archived
# prefix), lag (messages), passes (done so
# far, from the log), last_pass_s (the newest pass's duration), last_pass_mb_s (its message bytes
# per second), iceberg_version, rss_kb,
# segments_bytes, archive_bytes.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
fi
BIN=$(realpath "$1"); MINUTES=$2; RATE=$3; BATCH=${4:-100}; PRODUCERS=${5:-8}
SAMPLE=${SAMPLE:-30}; INTERVAL=${INTERVAL:-60s}; OUT=${OUT:-/tmp/archive-lag.csv}
[[ $MINUTES =~ ^[0-9]+$ && $RATE =~ ^[0-9]+$ && $BATCH =~ ^[0-9]+$ ]] || { echo "minutes, rate and batch are numbers" >&2; exit 2; }
D=${DATA:-$(mktemp -d /tmp/ferrymq-lag.XXXXXX)}
PORT=${PORT:-18971}; URL="http://127.0.0.1:$PORT"; TOPIC=lag
SECRET=archive-lag-secret-archive-lag-secret
LOG="$D.log"

FERRYMQ_LOG=info "$BIN" serve --store "file://$D" --listen "127.0.0.1:$PORT" --jwt-secret "$SECRET" \
  --compact-interval "$INTERVAL" ${EXTRA:---segment-grace 2m} > "$LOG" 2>&1 &
GW=$!
cleanup() {
  kill "$GW" 2>/dev/null || true
  wait "$GW" 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] || rm -rf "$D"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "$URL/readyz" > /dev/null && break; sleep 0.1; done
TOKEN=$("$BIN" token --jwt-secret "$SECRET" | tail -1)
H=(-H "authorization: Bearer $TOKEN" -H 'content-type: application/json')

SIZE_ARGS=()
[ -n "${MESSAGE_SIZE:-}" ] && SIZE_ARGS=(--message-size "$MESSAGE_SIZE")
"$BIN" bench --url "$URL" --token "$TOKEN" --topic "$TOPIC" --retention-hours 0 ${VARIED:+--varied-bodies} --producers "$PRODUCERS" \
  --batch "$BATCH" --rate "$RATE" --duration "${MINUTES}m" "${SIZE_ARGS[@]}" > "$D.bench" 2>&1 &
BENCH=$!
START=$(date +%s)
echo "elapsed_s,published,archived,lag,passes,last_pass_s,last_pass_mb_s,iceberg_version,rss_kb,segments_bytes,archive_bytes" > "$OUT"
while kill -0 "$BENCH" 2>/dev/null; do
  sleep "$SAMPLE"
  published=$(curl -sf "${H[@]}" "$URL/v1/topics/$TOPIC" | python3 -c \
    'import json,sys; print(sum(q["max_offset"] for q in json.load(sys.stdin)["queue_stats"]))')
  # Archived: each queue's archived prefix (its newest file's max offset + 1), not the rows
  # catalogued, which archive retention (EXTRA="--archive-retention ...") takes away again.
  # (`/v1/archive` answers a page of up to 10,000 files: follow `next`.)
  archived=$(URL=$URL TOPIC=$TOPIC AUTH="Bearer $TOKEN" python3 -c '
import json, os, urllib.parse, urllib.request
top, after = {}, None
while True:
    q = {"topic": os.environ["TOPIC"], "limit": 10000, **({"after": after} if after else {})}
    req = urllib.request.Request(os.environ["URL"] + "/v1/archive?" + urllib.parse.urlencode(q),
                                 headers={"Authorization": os.environ["AUTH"]})
    page = json.load(urllib.request.urlopen(req))
    for f in page["files"]:
        top[f["queue"]] = max(top.get(f["queue"], 0), f["max_offset"] + 1)
    after = page.get("next")
    if not after:
        break
print(sum(top.values()))')
  passes=$(grep -c "compaction pass done" "$LOG" || true)
  # The newest pass's duration and rate of message bytes (the log without its colours).
  read -r last mbs < <({ grep "compaction pass done" "$LOG" || true; } | tail -1 |
    sed 's/\x1b\[[0-9;]*m//g' |
    sed -n 's/.*message_bytes=\([0-9]*\).*elapsed=\([0-9.]*\)\(m\?s\).*/\1 \2 \3/p' |
    awk '{ s = ($3 == "ms") ? $2 / 1000 : $2; printf "%.1f %.1f\n", s, $1 / 1e6 / s }') || true
  hint="$D/archive/metadata/version-hint.text"
  ice=$(cat "$hint" 2>/dev/null || echo 0)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$GW/status")
  # du complains (and fails) when a pass deletes files under it: keep its figure.
  seg=$(du -sb "$D/segments" 2>/dev/null | cut -f1 || true)
  arc=$(du -sb "$D/archive" 2>/dev/null | cut -f1 || true)
  line="$(( $(date +%s) - START )),$published,$archived,$((published - archived)),$passes,${last:-},${mbs:-},$ice,$rss,${seg:-0},${arc:-0}"
  echo "$line" | tee -a "$OUT"
done
wait "$BENCH" || true
tr "\r" "\n" < "$D.bench" | grep -v " sent " | tail -6
