"""Bytes per span of a Cairn store, by dataset and column group, from the Parquet footers.

Reads every Parquet file under the store with DuckDB's `parquet_metadata` (compressed column
chunk sizes; footers and page indexes are counted as the file size minus its chunks) and
divides by the spans stored. Groups: the span's ids and times, its name/kind/status, its
attribute maps (span, resource, scope) with their types, events and links, the payload
references (`*_ref`, `*_refs`), the promoted agent columns (the rest, with their `_src`), then
payloads (hash, kind, content) and the trace index.

    python benches/bytes_by_column.py --store /var/tmp/cmp
"""

import argparse
import glob
import os

import duckdb

IDS_AND_TIMES = {"trace_id", "span_id", "parent_span_id", "trace_state", "flags", "start_time",
                 "end_time", "duration_ns"}
NAMES = {"name", "kind", "status_code", "status_message", "service_name"}
ATTRIBUTE_ROOTS = ("attributes", "attribute_types", "resource_", "scope_", "events", "links",
                   "dropped_")


def group(dataset, column):
    """The group of a column, by the top-level name of its path."""
    if dataset != "spans":
        return f"{dataset}: {column}" if dataset == "payloads" else dataset
    if column in IDS_AND_TIMES:
        return "spans: ids and times"
    if column in NAMES:
        return "spans: name, kind, status, service"
    if column.startswith(ATTRIBUTE_ROOTS):
        return "spans: attributes, resource, scope, events, links"
    if column.removesuffix("_src").endswith(("_ref", "_refs")):
        return "spans: payload references"
    return "spans: promoted agent columns"


def dataset_of(path, store):
    return os.path.relpath(path, store).split(os.sep)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    args = ap.parse_args()
    files = [f for f in glob.glob(os.path.join(args.store, "**", "*.parquet"), recursive=True)]
    if not files:
        raise SystemExit(f"no Parquet files under {args.store}")
    con = duckdb.connect()
    sizes, spans, chunk_bytes = {}, 0, {}
    for f in files:
        dataset = dataset_of(f, args.store)
        rows = con.execute(
            "SELECT path_in_schema, sum(total_compressed_size) FROM parquet_metadata(?) GROUP BY 1", [f]
        ).fetchall()
        total_chunks = 0
        for path, size in rows:
            column = path.split(",")[0].strip()
            g = group(dataset, column)
            sizes[g] = sizes.get(g, 0) + size
            total_chunks += size
        overhead = f"{dataset}: footers and indexes"
        sizes[overhead] = sizes.get(overhead, 0) + os.path.getsize(f) - total_chunks
        chunk_bytes[dataset] = chunk_bytes.get(dataset, 0) + os.path.getsize(f)
        if dataset == "spans":
            spans += con.execute("SELECT num_rows FROM parquet_file_metadata(?)", [f]).fetchone()[0]
    if not spans:
        raise SystemExit("no spans stored")
    total = sum(sizes.values())
    print(f"{len(files)} files, {spans:,} spans, {total:,} bytes: {total / spans:,.1f} bytes per span\n")
    print("| group | bytes per span | share |")
    print("|---|---|---|")
    for g, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"| {g} | {size / spans:,.1f} | {size / total:.1%} |")
    print()
    for dataset, size in sorted(chunk_bytes.items()):
        print(f"{dataset}: {size / spans:,.1f} bytes per span")


if __name__ == "__main__":
    main()
