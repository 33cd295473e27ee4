"""Checks pushes captured by tests/tests/push.rs with libraries nobody here wrote.

Usage: push_verify.py SECRET CAPTURED.json

CAPTURED.json is a list of {"headers": {name: value}, "body_base64": "..."}. Every push must
verify as a Standard Webhooks signature under SECRET (the `standardwebhooks` package) and
parse as a CloudEvents 1.0 HTTP event, binary or structured (the `cloudevents` package).
Prints one JSON object per push: the webhook id and the event's attributes and data
(base64), for the test to compare with what it published. Exits non-zero on the first push
that does not verify or parse.
"""

import base64
import json
import sys

from cloudevents.v1.http import from_http
from standardwebhooks import Webhook


def main() -> None:
    secret, path = sys.argv[1], sys.argv[2]
    hook = Webhook(secret)
    with open(path, encoding="utf-8") as f:
        captured = json.load(f)
    out = []
    for i, push in enumerate(captured):
        headers = push["headers"]
        body = base64.b64decode(push["body_base64"])
        try:
            hook.verify(body, headers, json_parse=False)
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            sys.exit(f"push {i} ({headers.get('webhook-id')}): signature does not verify: {e!r}")
        try:
            event = from_http(headers, body)
        except Exception as e:  # noqa: BLE001
            sys.exit(f"push {i}: not a CloudEvent: {e!r}")
        data = event.data
        if isinstance(data, (dict, list)):
            data = json.dumps(data, separators=(",", ":")).encode()
        elif isinstance(data, str):
            data = data.encode()
        elif data is None:
            data = b""
        attributes = {k: str(v) for k, v in event.get_attributes().items()}
        out.append(
            {
                "webhook_id": headers["webhook-id"],
                "attributes": attributes,
                "data_base64": base64.b64encode(data).decode(),
            }
        )
    # A tampered body must not verify (the check above can fail).
    if captured:
        push = captured[0]
        body = base64.b64decode(push["body_base64"]) + b" "
        try:
            hook.verify(body, push["headers"], json_parse=False)
        except Exception:  # noqa: BLE001
            pass
        else:
            sys.exit("a tampered body verified")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
