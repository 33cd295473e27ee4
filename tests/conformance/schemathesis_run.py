"""Runs schemathesis (pinned in scripts/test) against a live FerryMQ gateway.

Usage: schemathesis_run.py BASE_URL TOKEN

Every operation of BASE_URL/openapi.json, with positive and negative data (`--mode all`), and
the checks the contract promises: no server error, documented status codes, documented content
types, response bodies valid against their schemas, and every request that violates the schema
rejected with a 4xx. Bounded by `--max-examples` so that CI stays short. Exits non-zero on any
failure; prints schemathesis's summary (its counts go into docs/api.md).
"""

import os
import subprocess
import sys
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
    here = Path(__file__).resolve().parent
    st = Path(sys.executable).parent / "schemathesis"
    env = dict(os.environ)
    env["SCHEMATHESIS_HOOKS"] = "schemathesis_hooks"
    env["PYTHONPATH"] = str(here) + os.pathsep + env.get("PYTHONPATH", "")
    examples = os.environ.get("FERRYMQ_SCHEMATHESIS_EXAMPLES", "25")
    cmd = [
        str(st),
        "--no-color",
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
