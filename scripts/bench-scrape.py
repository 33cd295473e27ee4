#!/usr/bin/env python3
"""Times /metrics on a gateway holding many consumer groups (docs/benchmarks.md, "Scraping the
backlog"). Creates T topics and G groups each reading every topic, publishes a few messages,
leases some, then scrapes N times and prints the percentiles and the size of a scrape.

    scripts/bench-scrape.py URL TOKEN [groups=1000] [topics=10] [scrapes=50]
"""
import json
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

url, token = sys.argv[1], sys.argv[2]
groups = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
topics = int(sys.argv[4]) if len(sys.argv) > 4 else 10
scrapes = int(sys.argv[5]) if len(sys.argv) > 5 else 50


def call(method, path, body=None):
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


for t in range(topics):
    call("PUT", f"/v1/topics/bench-t{t}", {"type": "normal", "queues": 4})
    call("POST", f"/v1/topics/bench-t{t}/messages", {"messages": [{"body": "x"}] * 100})
subs = [{"topic": f"bench-t{t}"} for t in range(topics)]
started = time.time()
with ThreadPoolExecutor(16) as ex:
    list(ex.map(lambda g: call("PUT", f"/v1/groups/bench-g{g}", {"subscriptions": subs, "start_from": "earliest"}),
                range(groups)))
    # Some live work: every tenth group leases a few messages.
    list(ex.map(lambda g: call("POST", f"/v1/groups/bench-g{g}/receive", {"max_messages": 8}),
                range(0, groups, 10)))
print(f"created {groups} groups x {topics} topics in {time.time() - started:.1f} s")
times = []
size = 0
for _ in range(scrapes):
    t0 = time.perf_counter()
    size = len(call("GET", "/metrics"))
    times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(f"scrape: {size / 1e6:.2f} MB, {size // 1} bytes; ms p50 {statistics.median(times):.1f} "
      f"p90 {times[int(len(times) * 0.9) - 1]:.1f} max {times[-1]:.1f}")
