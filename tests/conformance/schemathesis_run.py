"""Runs schemathesis (pinned in scripts/test) against a live FerryMQ gateway.

Usage: schemathesis_run.py BASE_URL TOKEN

Every operation of BASE_URL/openapi.json, with positive and negative data (`--mode all`), and
the checks the contract promises: no server error, documented status codes, documented content
types, response bodies valid against their schemas, and every request that violates the schema
rejected with a 4xx. Before the run it creates a topic (with messages) and a consumer group, and
half of the generated `{topic}` and `{group}` path parameters name them, so that generated
requests also reach existing resources (receive, ack, reset, pull, lookup…), not only 404s.
Bounded by `--max-examples` so that CI stays short. Exits non-zero on any failure; prints
schemathesis's summary (its counts go into docs/api.md).
"""

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)

TOPIC = "st-orders"
GROUP = "st-billing"

CONFIG = f"""
[dictionaries.topics]
values = [{json.dumps(TOPIC)}]

[dictionaries.groups]
values = [{json.dumps(GROUP)}]

[parameters]
"path.topic" = {{ dictionary = "topics", probability = 0.5 }}
"path.group" = {{ dictionary = "groups", probability = 0.5 }}
"""


def call(base: str, token: str, method: str, path: str, body: dict) -> None:
    req = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        assert r.status < 300, (method, path, r.status)


def seed(base: str, token: str) -> None:
    call(base, token, "PUT", f"/v1/topics/{TOPIC}", {"queues": 2})
    call(
        base,
        token,
        "PUT",
        f"/v1/groups/{GROUP}",
        {"subscriptions": [{"topic": TOPIC}], "start_from": "earliest"},
    )
    messages = [{"body": f"m{i}", "keys": ["order-1"], "tag": "TagA"} for i in range(20)]
    call(base, token, "POST", f"/v1/topics/{TOPIC}/messages", {"messages": messages})


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    here = Path(__file__).resolve().parent
    seed(base, token)
    config = Path(tempfile.mkdtemp()) / "schemathesis.toml"
    config.write_text(CONFIG)
    st = Path(sys.executable).parent / "schemathesis"
    env = dict(os.environ)
    env["SCHEMATHESIS_HOOKS"] = "schemathesis_hooks"
    env["PYTHONPATH"] = str(here) + os.pathsep + env.get("PYTHONPATH", "")
    examples = os.environ.get("FERRYMQ_SCHEMATHESIS_EXAMPLES", "50")
    cmd = [
        str(st),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{base}/openapi.json",
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--mode",
        "all",
        "--max-examples",
        examples,
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "20",
        "--seed",
        os.environ.get("FERRYMQ_SCHEMATHESIS_SEED", "17"),
    ]
    print("$ " + " ".join(c if "Bearer" not in c else "Authorization: Bearer …" for c in cmd))
    sys.stdout.flush()
    return subprocess.call(cmd, env=env, cwd=here)


if __name__ == "__main__":
    sys.exit(main())
