"""Reads FerryMQ's archive as an Apache Iceberg table with pyiceberg, the way a user's engine
would: the newest metadata version from `version-hint.text`, then `StaticTable` (no catalog).

    iceberg_read.py ROOT [--filter-topic T --filter-from OFFSET] [--duckdb] [--parquet]

ROOT is the store's directory or `s3://bucket/prefix` (S3 settings from the AWS_* variables).
Prints, tab-separated, one line each:
    version  N
    count    topic  rows  distinct (queue, offset)
    row      topic  queue  offset  message_id  hex(body)
    meta     topic  queue  offset  tag  publish_ms  deliver_ms  keys(json)  properties(json)
    match    topic  queue  offset          (rows of the filtered scan, when asked)
    duckdb   rows                          (DuckDB's iceberg_scan count, when asked)
    pmeta    (as meta)                     (the Parquet files read directly by DuckDB's
                                            read_parquet, when asked: what the table must equal)
"""

import argparse
import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual
from pyiceberg.io import load_file_io
from pyiceberg.table import StaticTable


def meta_line(kind, topic, queue, offset, tag, publish_ms, deliver_ms, keys, props) -> str:
    props = json.dumps(sorted([k, v] for k, v in props))
    tag = tag if tag is not None else ""
    deliver_ms = deliver_ms if deliver_ms is not None else ""
    return f"{kind}\t{topic}\t{queue}\t{offset}\t{tag}\t{publish_ms}\t{deliver_ms}\t{json.dumps(keys)}\t{props}"


def duckdb_connect(root: str):
    import importlib.util

    import duckdb

    con = duckdb.connect()
    ext = list(importlib.util.find_spec("duckdb_ext").submodule_search_locations)[0]
    con.execute(f"SET extension_directory='{ext}/extensions'")
    if root.startswith("s3://"):
        con.execute("LOAD httpfs")
        endpoint = os.environ["AWS_ENDPOINT"].split("://", 1)[1]
        con.execute(f"""CREATE SECRET (TYPE s3, KEY_ID '{os.environ["AWS_ACCESS_KEY_ID"]}',
            SECRET '{os.environ["AWS_SECRET_ACCESS_KEY"]}', REGION '{os.environ["AWS_REGION"]}',
            ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)""")
    return con


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--filter-topic")
    ap.add_argument("--filter-from", type=int, default=0)
    ap.add_argument("--duckdb", action="store_true")
    ap.add_argument("--parquet", action="store_true")
    args = ap.parse_args()

    if args.root.startswith("s3://"):
        location = f"{args.root}/archive"
        props = {
            "s3.endpoint": os.environ["AWS_ENDPOINT"],
            "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
            "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
            "s3.region": os.environ["AWS_REGION"],
        }
    else:
        location = f"file://{args.root}/archive"
        props = {}
    io = load_file_io(props, location)
    with io.new_input(f"{location}/metadata/version-hint.text").open() as f:
        version = int(f.read().decode().strip())
    print(f"version\t{version}")
    table = StaticTable.from_metadata(f"{location}/metadata/v{version}.metadata.json", props)

    rows = table.scan().to_arrow()
    ms = lambda col: pc.cast(pc.cast(rows.column(col), pa.timestamp("ms", tz="UTC")), pa.int64())
    publish, deliver = ms("publish_time").to_pylist(), ms("deliver_time").to_pylist()
    counts: dict = {}
    for i, r in enumerate(rows.to_pylist()):
        topic, queue, offset = r["topic"], r["queue"], r["offset"]
        c = counts.setdefault(topic, [0, set()])
        c[0] += 1
        c[1].add((queue, offset))
        print(f"row\t{topic}\t{queue}\t{offset}\t{r['message_id']}\t{r['body'].hex().upper()}")
        print(meta_line("meta", topic, queue, offset, r["tag"], publish[i], deliver[i],
                        r["keys"], r["properties"] or []))
    for topic, (n, distinct) in sorted(counts.items()):
        print(f"count\t{topic}\t{n}\t{len(distinct)}")

    if args.filter_topic is not None:
        expr = And(EqualTo("topic", args.filter_topic), GreaterThanOrEqual("offset", args.filter_from))
        got = table.scan(row_filter=expr, selected_fields=("topic", "queue", "offset")).to_arrow()
        for r in got.to_pylist():
            print(f"match\t{r['topic']}\t{r['queue']}\t{r['offset']}")

    if args.duckdb:
        con = duckdb_connect(args.root)
        con.execute("LOAD avro")
        con.execute("LOAD iceberg")
        target = location if args.root.startswith("s3://") else f"{args.root}/archive"
        (n,) = con.execute(f"select count(*) from iceberg_scan('{target}')").fetchone()
        print(f"duckdb\t{n}")

    if args.parquet:
        con = duckdb_connect(args.root)
        rel = f"read_parquet('{args.root}/archive/**/*.parquet', hive_partitioning = true)"
        for topic, queue, offset, tag, p, d, keys, props in con.execute(
            f"""select topic, queue, "offset", tag, epoch_ms(publish_time), epoch_ms(deliver_time),
                keys, map_entries(properties) from {rel}"""
        ).fetchall():
            props = [(e["key"], e["value"]) for e in props]
            print(meta_line("pmeta", topic, queue, offset, tag, p, d, keys, props))


if __name__ == "__main__":
    sys.exit(main())
