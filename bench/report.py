#!/usr/bin/env python3
"""Results of bench/run.sh: parses rdkafka_performance, dd and iperf3
output into JSON lines, and prints the table (markdown) with the ratios.

  report.py produce   JSONL LOG --section S --workload W --broker B --size N --expect N
  report.py consume   JSONL LOG --section S --workload W --broker B --size N --expect N
  report.py latency   JSONL FILE --section S --workload W --broker B [--producer-log LOG] [--skip N]
  report.py row       JSONL --section S --workload W --broker B [--msgs-s X] [--mb-s X] [--note T]
  report.py table     JSONL

Every figure comes from the run: msgs/s and MB/s (10^6 bytes) from the
record count, the record size and the elapsed time rdkafka_performance
reports (first message to last delivery report, or first to last message
consumed); latency percentiles from its per-message -A files (microseconds).
"""

import argparse
import json
import re
import sys

PRODUCED = re.compile(
    r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered "
    r"\(offset -?\d+, (\d+) failed\) in (\d+)ms"
)
CONSUMED = re.compile(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms")


def append(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def base_row(args):
    return {
        "section": args.section,
        "workload": args.workload,
        "broker": args.broker,
        "msgs_s": None,
        "mb_s": None,
        "p50_ms": None,
        "p99_ms": None,
        "note": getattr(args, "note", None) or "",
    }


def last_match(pattern, text):
    found = None
    for m in pattern.finditer(text):
        found = m
    return found


def rate_row(args, pattern, parse):
    """One row from one rdkafka_performance run: `parse(match, expect)`
    gives (records, ms, failure note or "")."""
    row = base_row(args)
    text = open(args.log, errors="replace").read()
    m = last_match(pattern, text)
    if not m:
        row["note"] = "FAILED: no summary from rdkafka_performance (see %s)" % args.log
    else:
        records, ms, failure = parse(m, args.expect)
        ms = max(ms, 1)
        row["msgs_s"] = records * 1000.0 / ms
        row["mb_s"] = records * args.size / ms / 1000.0
        row["note"] = failure
    append(args.jsonl, row)
    print_row(row)
    return 0 if row["msgs_s"] and not row["note"].startswith("FAILED") else 1


def produced(m, expect):
    delivered, failed, ms = int(m.group(3)), int(m.group(4)), int(m.group(5))
    failure = ""
    if failed or delivered < expect:
        failure = "FAILED: %d of %d delivered, %d failed" % (delivered, expect, failed)
    return delivered, ms, failure


def consumed(m, expect):
    msgs, ms = int(m.group(1)), int(m.group(3))
    failure = "FAILED: %d of %d consumed" % (msgs, expect) if msgs < expect else ""
    return msgs, ms, failure


def cmd_produce(args):
    return rate_row(args, PRODUCED, produced)


def cmd_consume(args):
    return rate_row(args, CONSUMED, consumed)


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def cmd_latency(args):
    row = base_row(args)
    values = []
    try:
        for line in open(args.file):
            line = line.strip()
            if line:
                values.append(int(line))
    except OSError:
        pass
    # The first records wait for the client's connection and metadata:
    # left out (the first second's worth by default in run.sh).
    values = values[args.skip:]
    values.sort()
    args.expect = max(0, args.expect - args.skip)
    if len(values) < args.expect:
        row["note"] = "FAILED: %d of %d latencies recorded" % (len(values), args.expect)
    if values:
        row["p50_ms"] = percentile(values, 50) / 1000.0
        row["p99_ms"] = percentile(values, 99) / 1000.0
        extra = "%d samples (first %d left out), max %.2f ms" % (
            len(values), args.skip, values[-1] / 1000.0)
        row["note"] = (row["note"] + "; " if row["note"] else "") + extra
    if args.producer_log:
        # The rate the producer achieved (it may fall short of -r).
        try:
            m = last_match(PRODUCED, open(args.producer_log, errors="replace").read())
        except OSError:
            m = None
        if m:
            delivered, ms = int(m.group(3)), max(int(m.group(5)), 1)
            row["msgs_s"] = delivered * 1000.0 / ms
            row["mb_s"] = delivered * args.size / ms / 1000.0
    append(args.jsonl, row)
    print_row(row)
    return 0


def cmd_row(args):
    row = base_row(args)
    row["msgs_s"] = args.msgs_s
    row["mb_s"] = args.mb_s
    row["note"] = args.note or ""
    append(args.jsonl, row)
    print_row(row)
    return 0


def cmd_merge(args):
    """One row per (section, workload, broker) from the passes of
    bench/run.sh --repeat: the median pass by msgs/s (the lower middle one
    for an even count), its note listing every pass's MB/s. A workload that
    failed in any pass keeps that failure: a median must not hide it. A row
    without figures (a note, as peak RSS) is the first pass's, its note
    followed by the others'."""
    passes = [[json.loads(l) for l in open(f) if l.strip()] for f in args.passes]
    key = lambda r: (r["section"], r["workload"], r["broker"])
    order, groups = [], {}
    for rows in passes:
        for r in rows:
            if key(r) not in groups:
                order.append(key(r))
                groups[key(r)] = []
            groups[key(r)].append(r)
    status = 0
    for k in order:
        rows = groups[k]
        failed = [r for r in rows if r["note"].startswith("FAILED")]
        measured = [r for r in rows if r["msgs_s"] is not None]
        if failed:
            row = dict(failed[0])
            row["note"] += " (%d of %d passes failed)" % (len(failed), len(passes))
            status = 1
        elif measured and len(measured) == len(rows):
            ordered = sorted(rows, key=lambda r: r["msgs_s"])
            row = dict(ordered[(len(ordered) - 1) // 2])
            spread = " / ".join(fmt(r["mb_s"]) for r in rows)
            row["note"] = ("median of %d passes (%s MB/s)" % (len(rows), spread)
                           + ("; " + row["note"] if row["note"] else ""))
        else:
            row = dict(rows[0])
            row["note"] = " / ".join(r["note"] for r in rows) + " (passes 1..%d)" % len(rows)
        append(args.jsonl, row)
        print_row(row)
    return status


def fmt(value, digits=0):
    if value is None:
        return "-"
    if digits == 0:
        return "{:,.0f}".format(value)
    return "{:,.{}f}".format(value, digits)


def print_row(row):
    print(
        "  -> %-28s %-22s msgs/s %s  MB/s %s  p50 %s  p99 %s  %s"
        % (
            row["workload"][:28],
            row["broker"][:22],
            fmt(row["msgs_s"]),
            fmt(row["mb_s"], 1),
            fmt(row["p50_ms"], 2),
            fmt(row["p99_ms"], 2),
            row["note"],
        ),
        file=sys.stderr,
    )


SECTION_TITLES = {
    "limits": "Physical limits (same run)",
    "idle": "Idle broker memory",
    "a": "(a) produce 100 B records",
    "b": "(b) produce 1 KiB records",
    "c": "(c) consume them back",
    "d": "(d) end-to-end latency at a fixed rate",
    "e": "(e) three seedlog brokers, RF=3, acks=all (vs seedlog's single broker)",
    "f": "(f) 1,000 partitions, 100 producers",
}


def is_seedlog(row):
    """seedlog's own rows: its defaults, --no-flush-before-ack, the cluster."""
    return row["broker"].startswith("seedlog")


def against_best_peer(row, rows):
    """A seedlog row against the best peer of the same workload: highest
    msgs/s, or lowest p99 for (d)."""
    peers = [r for r in rows if r["section"] == row["section"] and r["workload"] == row["workload"]
             and not is_seedlog(r) and not r["note"].startswith("FAILED")]
    if row["section"] == "d":
        peers = [r for r in peers if r["p99_ms"]]
        if not peers or not row["p99_ms"]:
            return ""
        best = min(peers, key=lambda r: r["p99_ms"])
        return "%.2f vs best peer, %s (p99, lower is better)" % (row["p99_ms"] / best["p99_ms"], best["broker"])
    peers = [r for r in peers if r["msgs_s"]]
    if not peers or not row["msgs_s"]:
        return ""
    best = max(peers, key=lambda r: r["msgs_s"])
    return "%.2f vs best peer, %s" % (row["msgs_s"] / best["msgs_s"], best["broker"])


def ratio(row, rows):
    """seedlog/peer for a peer row (seedlog with its defaults); for a
    seedlog row, against the best peer; cluster/single for (e); ''
    otherwise."""
    if row["note"].startswith("FAILED"):
        return ""
    if row["section"] == "idle":
        return ""
    if is_seedlog(row) and row["section"] != "e":
        return against_best_peer(row, rows)
    if row["section"] == "e":
        single = [r for r in rows if r["section"] in ("a", "b") and r["broker"] == "seedlog"
                  and r["workload"] == row["workload"]]
        if single and single[0]["msgs_s"] and row["msgs_s"]:
            return "%.2f (cluster/single)" % (row["msgs_s"] / single[0]["msgs_s"])
        return ""
    ours = [r for r in rows if r["section"] == row["section"] and r["workload"] == row["workload"]
            and r["broker"] == "seedlog" and not r["note"].startswith("FAILED")]
    if not ours:
        return ""
    ours = ours[0]
    if row["section"] == "d":
        if ours["p99_ms"] and row["p99_ms"]:
            return "%.2f (p99, lower is better)" % (ours["p99_ms"] / row["p99_ms"])
        return ""
    if ours["msgs_s"] and row["msgs_s"]:
        return "%.2f" % (ours["msgs_s"] / row["msgs_s"])
    return ""


def cmd_table(args):
    rows = [json.loads(line) for line in open(args.jsonl) if line.strip()]
    out = []
    for section in ["limits", "idle", "a", "b", "c", "d", "e", "f"]:
        these = [r for r in rows if r["section"] == section]
        if not these:
            continue
        out.append("")
        out.append("### " + SECTION_TITLES[section])
        out.append("")
        out.append("| workload | broker | msgs/s | MB/s | p50 ms | p99 ms | seedlog/peer | note |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in these:
            out.append(
                "| %s | %s | %s | %s | %s | %s | %s | %s |"
                % (
                    r["workload"],
                    r["broker"],
                    fmt(r["msgs_s"]),
                    fmt(r["mb_s"], 1),
                    fmt(r["p50_ms"], 2),
                    fmt(r["p99_ms"], 2),
                    ratio(r, rows),
                    r["note"].replace("|", "/"),
                )
            )
    print("\n".join(out))
    return 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)

    def common(p, needs_log=True):
        p.add_argument("jsonl")
        if needs_log:
            p.add_argument("log")
        p.add_argument("--section", required=True)
        p.add_argument("--workload", required=True)
        p.add_argument("--broker", required=True)

    for name in ("produce", "consume"):
        p = sub.add_parser(name)
        common(p)
        p.add_argument("--size", type=int, required=True)
        p.add_argument("--expect", type=int, required=True)
    p = sub.add_parser("latency")
    p.add_argument("jsonl")
    p.add_argument("file")
    p.add_argument("--section", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--broker", required=True)
    p.add_argument("--producer-log")
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--skip", type=int, default=0)
    p = sub.add_parser("row")
    common(p, needs_log=False)
    p.add_argument("--msgs-s", type=float)
    p.add_argument("--mb-s", type=float)
    p.add_argument("--note")
    p = sub.add_parser("merge")
    p.add_argument("jsonl")
    p.add_argument("passes", nargs="+")
    p = sub.add_parser("table")
    p.add_argument("jsonl")
    args = parser.parse_args()
    return {
        "produce": cmd_produce,
        "consume": cmd_consume,
        "latency": cmd_latency,
        "row": cmd_row,
        "merge": cmd_merge,
        "table": cmd_table,
    }[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
