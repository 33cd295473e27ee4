"""A FerryMQ client nobody here wrote: generated at test time from the gateway's own
/openapi.json by openapi-python-client (pinned in scripts/test), then used as its README
says: publish, receive, ack, read the group's lag, look the message up.

Usage: python_client.py BASE_URL TOKEN
"""

import importlib
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path


def generate(base: str, into: Path) -> None:
    spec = into / "openapi.json"
    with urllib.request.urlopen(f"{base}/openapi.json") as r:
        spec.write_bytes(r.read())
    # No post hooks: the generator's default formats the code with ruff, which is not needed
    # to use it (and would be one more tool to pin).
    config = into / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))
    generator = Path(sys.executable).parent / "openapi-python-client"
    subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(into / "ferrymq_client"),
            "--fail-on-warning",
        ],
        check=True,
    )


def expect(response, status: int):
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.content!r}"
    )
    return response.parsed


def main() -> None:
    base, token = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(base, tmp)
        sys.path.insert(0, str(tmp))
        client_mod = importlib.import_module("ferrymq_client")
        models = importlib.import_module("ferrymq_client.models")

        def op(tag: str, name: str):
            return importlib.import_module(f"ferrymq_client.api.{tag}.{name}")

        client = client_mod.AuthenticatedClient(base_url=base, token=token)

        r = op("topics", "put_topic").sync_detailed(
            topic="py-orders",
            client=client,
            body=models.CreateTopicRequest.from_dict({"type": "normal", "queues": 2}),
        )
        topic = expect(r, 201)
        assert topic.queues == 2, topic

        r = op("groups", "put_group").sync_detailed(
            group="py-billing",
            client=client,
            body=models.CreateGroupRequest.from_dict(
                {"subscriptions": [{"topic": "py-orders"}], "start_from": "earliest"}
            ),
        )
        expect(r, 201)

        r = op("messages", "publish").sync_detailed(
            topic="py-orders",
            client=client,
            body=models.PublishRequest.from_dict(
                {"messages": [{"body": "hello from python", "keys": ["order-7"]}]}
            ),
        )
        published = expect(r, 200)
        assert len(published.results) == 1, published
        message_id = published.results[0].message_id

        r = op("consume", "receive").sync_detailed(
            group="py-billing",
            client=client,
            body=models.ReceiveRequest.from_dict({"max_messages": 10, "wait_ms": 5000}),
        )
        received = expect(r, 200)
        assert [m.message_id for m in received.messages] == [message_id], received
        m = received.messages[0]
        assert m.body == "hello from python" and m.delivery_attempt == 1, m

        r = op("groups", "get_group").sync_detailed(group="py-billing", client=client)
        lag = expect(r, 200).lag
        assert sum(q.inflight for q in lag) == 1, lag

        r = op("consume", "ack").sync_detailed(
            group="py-billing",
            client=client,
            body=models.AckRequest.from_dict({"receipt_handles": [m.receipt_handle]}),
        )
        acked = expect(r, 200)
        assert [x.ok for x in acked.results] == [True], acked

        r = op("groups", "get_group").sync_detailed(group="py-billing", client=client)
        lag = expect(r, 200).lag
        assert sum(q.inflight for q in lag) == 0, lag
        assert sum(q.committed_offset for q in lag) == 1, lag
        assert sum(q.max_offset for q in lag) == 1, lag

        r = op("messages", "lookup_message").sync_detailed(
            topic="py-orders", message_id=message_id, client=client
        )
        found = expect(r, 200)
        assert (found.message_id, found.body) == (message_id, "hello from python"), found

        r = op("messages", "lookup_message").sync_detailed(
            topic="py-nowhere", message_id=message_id, client=client
        )
        error = expect(r, 404)
        assert error.error.code.value == "TopicNotFound", error

        print(json.dumps({"published": message_id, "acked": True, "lag": 0}))


if __name__ == "__main__":
    main()
