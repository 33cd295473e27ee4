#!/usr/bin/env bash
# Soak: one gateway on a fresh fsynced local directory under a steady publish load for a long
# time, sampling what must stay bounded (the newest manifest checkpoint, the gateway's RSS,
# the bytes under manifest/) beside what may grow (index/, segments/), then a restart on the
# same directory timed from process start to /readyz answering 200.
#
# usage: scripts/soak.sh <ferrymq binary> <minutes> [rate] [consumers]
#   rate: messages/s in all (default 8000), from `ferrymq bench --producers 64 --batch 1`;
#   consumers > 0 adds `--consumers N --consumer-mode group`.
# env: SAMPLE=<s> between samples (default 60); OUT=<file> the CSV (default <dir>.csv);
#   DATA=<dir> the data directory (default a fresh /tmp/ferrymq-soak.XXXXXX), kept afterwards
#   unless KEEP=0; STORE_URL=s3://bucket/prefix soaks against S3 instead (AWS_* variables as
#   for `ferrymq serve`; use a fresh prefix): the disk columns are then left empty;
#   MESSAGE_SIZE=<bytes> (bench default 1024); EXTRA="..." adds serve flags.
# Disk: segments are never collected without the compactor, so a run writes about
#   minutes x 60 x rate x (MESSAGE_SIZE + ~100) bytes (8000/s of 1 KiB: ~30 GB an hour).
#
# CSV columns: elapsed_s (since the bench started), checkpoint_version and checkpoint_bytes
# (the newest file under manifest/checkpoints/), rss_kb (VmRSS of the gateway),
# manifest_bytes (all of <dir>/manifest/), log_files and checkpoint_files (in manifest/log/ and
# manifest/checkpoints/), index_bytes, segments_bytes, segments_files (under <dir>/...),
# published_total, ack_count, ack_sum_s, store_puts (the gateway's /metrics), sample_s (time
# the sample took: walking segments/ grows with the run).
# The restart prints three figures from process start: listening (/readyz answers at all),
# ready (/readyz 200) and sequencer (GET /v1/cluster shows a sequencer epoch above the one
# before the restart; until then publishes wait. The restart listens on the same address as
# the stopped gateway, so it claims at once; on another address it would wait --lease-ttl).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
fi
BIN=$(realpath "$1"); MINUTES=$2; RATE=${3:-8000}; CONSUMERS=${4:-0}
SAMPLE=${SAMPLE:-60}
[[ $MINUTES =~ ^[0-9]+$ && $MINUTES -gt 0 ]] || { echo "minutes must be a whole number > 0" >&2; exit 2; }
[[ $RATE =~ ^[0-9]+$ && $CONSUMERS =~ ^[0-9]+$ ]] || { echo "rate and consumers are numbers" >&2; exit 2; }
[ -x "$BIN" ] || { echo "$BIN is not executable" >&2; exit 2; }

if [ -n "${STORE_URL:-}" ]; then
  STORE=$STORE_URL; D=""
  OUT=${OUT:-/tmp/ferrymq-soak-$(date +%Y%m%d-%H%M%S).csv}
else
  D=${DATA:-$(mktemp -d /tmp/ferrymq-soak.XXXXXX)}
  mkdir -p "$D"; D=$(realpath "$D")
  if [ -n "$(ls -A "$D")" ]; then echo "$D is not empty: a soak starts on a fresh directory" >&2; exit 2; fi
  STORE=file://$D
  OUT=${OUT:-$D.csv}
  need=$(( MINUTES * 60 * RATE * (${MESSAGE_SIZE:-1024} + 100) ))
  free=$(( $(df -Pk "$D" | awk 'NR==2 {print $4}') * 1024 ))
  if [ "$need" -gt "$free" ]; then
    echo "warning: this run may write ~$((need / 1000000000)) GB; $((free / 1000000000)) GB free under $D" >&2
  fi
fi
LOGS=${OUT%.csv}
export FERRYMQ_JWT_SECRET=${FERRYMQ_JWT_SECRET:-soaksecret}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT

GW=""; SAMPLER=""; BENCH=""
cleanup() {
  for p in $BENCH $SAMPLER $GW; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-1}" = 0 ] && [ -n "$D" ]; then rm -rf "$D"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # <pid> <seconds>: until /readyz answers 200, or the gateway died, or timeout
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    curl -fs -o /dev/null "$URL/readyz" && return 0
    kill -0 "$1" 2>/dev/null || { echo "the gateway exited; see $LOGS.gateway.log" >&2; return 1; }
    sleep 0.05
  done
  echo "the gateway was not ready within $2 s" >&2; return 1
}

# shellcheck disable=SC2086 # EXTRA is a list of flags
"$BIN" serve --store "$STORE" --listen "127.0.0.1:$PORT" --log warn ${EXTRA:-} >"$LOGS.gateway.log" 2>&1 &
GW=$!
wait_ready "$GW" 120
T=$("$BIN" token --ttl "$((MINUTES + 60))m")
echo "soak: $MINUTES min at $RATE msg/s, $CONSUMERS consumers, store $STORE, gateway pid $GW on $URL"
echo "soak: CSV $OUT, logs $LOGS.{gateway,bench}.log, a sample every $SAMPLE s"

# The sampler: one CSV row every SAMPLE s from now (the bench's start), and a last one when
# told to stop (SIGTERM).
python3 - "$GW" "${D}" "$URL" "$SAMPLE" "$OUT" <<'PY' &
import os, signal, sys, time, urllib.request
pid, d, url, every, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
cols = ["elapsed_s", "checkpoint_version", "checkpoint_bytes", "rss_kb", "manifest_bytes",
        "log_files", "checkpoint_files", "index_bytes", "segments_bytes", "segments_files", "published_total",
        "ack_count", "ack_sum_s", "store_puts", "sample_s"]
start = time.monotonic()
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)

def tree(path):
    """(bytes, files) under path; (None, None) when it does not exist yet."""
    if not os.path.isdir(path):
        return None, None
    total = files = 0
    stack = [path]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except FileNotFoundError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    else:
                        total += e.stat(follow_symlinks=False).st_size
                        files += 1
                except FileNotFoundError:  # collected meanwhile
                    pass
    return total, files

def count(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return None

def checkpoint():
    cp = os.path.join(d, "manifest", "checkpoints")
    names = [n for n in (os.listdir(cp) if os.path.isdir(cp) else []) if n.isdigit()]
    for name in sorted(names, reverse=True):  # zero-padded versions; skips temporary files
        try:
            return int(name), os.stat(os.path.join(cp, name)).st_size
        except FileNotFoundError:
            continue
    return None, None

def rss_kb():
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None

def metrics():
    want = {"ferrymq_messages_published_total": None, "ferrymq_publish_ack_seconds_count": None,
            "ferrymq_publish_ack_seconds_sum": None, 'ferrymq_store_requests_total{op="put"}': None}
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                name, _, value = line.rpartition(" ")
                if name in want:
                    want[name] = float(value)
    except Exception:
        pass
    return list(want.values())

def row():
    t0 = time.monotonic()
    elapsed = round(t0 - start)
    if d:
        cv, cb = checkpoint()
        mb, _ = tree(os.path.join(d, "manifest"))
        lf, cf = (count(os.path.join(d, "manifest", sub)) for sub in ("log", "checkpoints"))
        ib, _ = tree(os.path.join(d, "index"))
        sb, sf = tree(os.path.join(d, "segments"))
    else:
        cv = cb = mb = lf = cf = ib = sb = sf = None
    rss = rss_kb()
    pub, n, s, puts = metrics()
    vals = [elapsed, cv, cb, rss, mb, lf, cf, ib, sb, sf, pub, n, s, puts,
            time.monotonic() - t0]
    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3f}" if v != int(v) else str(int(v))
        return str(v)
    return ",".join(fmt(v) for v in vals)

with open(out, "w") as f:
    f.write(",".join(cols) + "\n")
    f.flush()
    k = 1
    while not stop:
        t = start + k * every - time.monotonic()
        if t > 0:
            # sleep in small steps so a SIGTERM ends the wait promptly
            time.sleep(min(t, 0.5))
            continue
        k += 1
        line = row()
        f.write(line + "\n"); f.flush()
        print("sample: " + line, flush=True)
    line = row()
    f.write(line + "\n"); f.flush()
    print("sample (end): " + line, flush=True)
PY
SAMPLER=$!

args=(bench --url "$URL" --token "$T" --producers 64 --batch 1 --rate "$RATE" --duration "${MINUTES}m")
[ "$CONSUMERS" -gt 0 ] && args+=(--consumers "$CONSUMERS" --consumer-mode group)
[ -n "${MESSAGE_SIZE:-}" ] && args+=(--message-size "$MESSAGE_SIZE")
"$BIN" "${args[@]}" >"$LOGS.bench.out" 2>"$LOGS.bench.log" &
BENCH=$!
bench_rc=0; wait "$BENCH" || bench_rc=$?
BENCH=""
kill -TERM "$SAMPLER"; wait "$SAMPLER" || true
SAMPLER=""

echo
echo "== samples ($OUT)"
column -s, -t < "$OUT"
echo
echo "== bench (exit $bench_rc)"
cat "$LOGS.bench.out"
[ "$bench_rc" = 0 ] || tail -c 2000 "$LOGS.bench.log" | tr '\r' '\n' | tail -5
ack=$(grep -oP 'publish-ack latency: \K.*(?= \(per)' "$LOGS.bench.out" || true)
e2e=$(grep -oP 'end-to-end latency: \K.*' "$LOGS.bench.out" || true)
rate=$(grep -oP 'publish throughput: \K[0-9]+' "$LOGS.bench.out" || true)
errs=$(grep -oP '^errors: \K[0-9]+' "$LOGS.bench.out" || true)
echo "final: ${rate:-?} msg/s; publish-ack ${ack:-?}${e2e:+; end-to-end $e2e}; errors ${errs:-?}"

echo
echo "== restart on the same store"
epoch=$(curl -fs "$URL/v1/cluster" -H "Authorization: Bearer $T" |
  python3 -c 'import json, sys; print(json.load(sys.stdin).get("sequencer_epoch", 0))' || echo 0)
kill -TERM "$GW"; wait "$GW" || true; GW=""
# Times from process start (fork): /readyz answering at all, answering 200, and a sequencer
# newer than the stopped one; polled every 10 ms.
restart_rc=0
python3 - "$BIN" "$STORE" "$PORT" "$LOGS.restart.log" "$T" "$epoch" "${EXTRA:-}" <<'PY' || restart_rc=$?
import json, shlex, signal, subprocess, sys, time, urllib.request, urllib.error
binary, store, port, log, token, epoch, extra = sys.argv[1:8]
base = f"http://127.0.0.1:{port}"
cmd = [binary, "serve", "--store", store, "--listen", f"127.0.0.1:{port}", "--log", "warn"] + shlex.split(extra)

def get(path, auth=False):
    req = urllib.request.Request(base + path)
    if auth:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=1) as r:
        return r.status, r.read()

with open(log, "w") as logf:
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    listening = ready = sequencer = None
    try:
        while time.monotonic() - t0 < 600 and sequencer is None:
            if p.poll() is not None:
                sys.exit(f"the restarted gateway exited with {p.returncode}; see {log}")
            try:
                if ready is None:
                    status, _ = get("/readyz")
                    listening = listening or time.monotonic() - t0
                    if status == 200:
                        ready = time.monotonic() - t0
                else:
                    _, body = get("/v1/cluster", auth=True)
                    if json.loads(body).get("sequencer_epoch", 0) > int(epoch):
                        sequencer = time.monotonic() - t0
            except urllib.error.HTTPError:  # 503: listening, not ready yet
                listening = listening or time.monotonic() - t0
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            time.sleep(0.01)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()
    if ready is None:
        sys.exit("the restarted gateway was not ready within 600 s")
    seq = f"{sequencer:.3f} s" if sequencer is not None else "not within 600 s"
    print(f"restart to ready: {ready:.3f} s (listening after {listening:.3f} s; sequencer after {seq})")
PY
if [ -n "$D" ]; then
  echo "data: $D ($(du -sh "$D" | cut -f1)); $([ "${KEEP:-1}" = 0 ] && echo "removed now (KEEP=0)" || echo kept)"
fi
[ "$bench_rc" = 0 ] && [ "$restart_rc" = 0 ]
