"""Schemathesis hooks for FerryMQ's conformance run (tests/conformance/schemathesis_run.py),
loaded through SCHEMATHESIS_HOOKS.

Long-polls: a valid `wait_ms` (1..=30000 ms) in a receive, pull or check poll makes the gateway
wait that long when nothing is there, and most generated cases find nothing: the run would take
hours. Just before each call (every phase), a valid value is replaced by 0, still valid; an
invalid one (negative, too large, not a number) is left alone, so negative cases stay negative.
"""

import schemathesis


def _short(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and 0 < value <= 30000:
        return 0
    if isinstance(value, str) and value.isdigit() and 0 < int(value) <= 30000:
        return "0"
    return value


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if isinstance(case.body, dict) and "wait_ms" in case.body:
        case.body["wait_ms"] = _short(case.body["wait_ms"])
    if isinstance(case.query, dict) and "wait_ms" in case.query:
        case.query["wait_ms"] = _short(case.query["wait_ms"])
