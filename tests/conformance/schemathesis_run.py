"""Runs schemathesis (pinned in scripts/test) against a live FerryMQ gateway.

Usage: schemathesis_run.py BASE_URL TOKEN [MODE [TOPIC GROUP]]

Every operation of BASE_URL/openapi.json, with positive and negative data (MODE `all`, the
default) or negative data only (`negative`), and the checks the contract promises: no server
error, documented status codes, documented content types, response bodies valid against their
schemas, and every request that violates the schema rejected with a 4xx. With TOPIC and GROUP,
every `{topic}` and `{group}` in a path names them (existing resources, so that a refused request
reaches the code that could change them). Bounded by `--max-examples` so that CI stays short.
Exits non-zero on any failure; prints schemathesis's summary (its counts go into docs/api.md).
"""

import json
import os
import subprocess
import sys
import tempfile
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


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "all"
    here = Path(__file__).resolve().parent
    config = Path(tempfile.mkdtemp()) / "schemathesis.toml"
    lines = []
    if len(sys.argv) > 5:
        lines += [
            "[parameters]",
            f'"path.topic" = {json.dumps(sys.argv[4])}',
            f'"path.group" = {json.dumps(sys.argv[5])}',
        ]
    config.write_text("\n".join(lines) + "\n")
    # Negative data only: the examples phase sends the schema's examples (valid requests) in any
    # mode, and a DELETE has no body or query to get wrong (what schemathesis sends there is a
    # valid deletion of the pinned resources): neither is a malformed request.
    phases = "examples,coverage,fuzzing"
    only_malformed = []
    if mode == "negative":
        phases = "coverage,fuzzing"
        only_malformed = ["--exclude-method", "DELETE"]
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
        mode,
        "--max-examples",
        examples,
        "--phases",
        phases,
        "--request-timeout",
        "20",
        "--seed",
        os.environ.get("FERRYMQ_SCHEMATHESIS_SEED", "17"),
        *only_malformed,
    ]
    print("$ " + " ".join(c if "Bearer" not in c else "Authorization: Bearer …" for c in cmd))
    sys.stdout.flush()
    return subprocess.call(cmd, env=env, cwd=here)


if __name__ == "__main__":
    sys.exit(main())
