#!/usr/bin/env bash
# CI regression guard on the produce and fetch paths, by instruction count
# (callgrind), not by time: the count of a single-threaded, deterministic
# workload is the same on a noisy machine as on a quiet one.
#
#   bench/callgrind_guard.sh            check against bench/callgrind_budget.txt
#   bench/callgrind_guard.sh --measure  print the measurement only
#
# It runs `seedlog bench produce-path` (decode request frames, the sans-IO
# core on the in-memory disk, flushes, encode responses; see
# src/bench_path.rs) under valgrind for two sizes and divides the
# difference in instructions by the difference in records, which cancels
# start-up. Once without fetching (produce cost per record) and once
# fetching everything back (fetch cost = the rest). Fails when a figure is
# above its budget. Needs valgrind (Debian: apt-get install valgrind) and a
# release build (it builds one if missing). Takes about ten seconds.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
budget_file="$repo/bench/callgrind_budget.txt"
mode="${1:-check}"

command -v valgrind >/dev/null || { echo "callgrind_guard: valgrind not installed (apt-get install valgrind)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-$repo/target}"
bin="$target/release/seedlog"
(cd "$repo" && cargo build --release --bin seedlog -q)

# The workload: batches of 10 records of 100 B, acks=1, one partition.
small=2000
large=4000
records_per_batch=10
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

instructions() { # name flags...
  local out="$work/$1.out"; shift
  RUST_LOG=off valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" bench produce-path --records-per-batch "$records_per_batch" "$@" >/dev/null 2>"$work/valgrind.log" \
    || { cat "$work/valgrind.log" >&2; exit 1; }
  # "summary: N" (or "totals: N") is the instruction count of the run.
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

p_small=$(instructions p-small --batches "$small")
p_large=$(instructions p-large --batches "$large")
f_small=$(instructions f-small --batches "$small" --fetch)
f_large=$(instructions f-large --batches "$large" --fetch)
records=$(( (large - small) * records_per_batch ))
produce=$(( (p_large - p_small) / records ))
fetch=$(( ((f_large - f_small) - (p_large - p_small)) / records ))
echo "callgrind: produce ${produce} instructions/record, fetch ${fetch} instructions/record" \
  "(runs: produce ${p_small} / ${p_large}, produce+fetch ${f_small} / ${f_large} instructions;" \
  "${small} vs ${large} batches of ${records_per_batch} x 100 B)"

if [ "$mode" = "--measure" ]; then exit 0; fi
[ -f "$budget_file" ] || { echo "callgrind_guard: no $budget_file" >&2; exit 1; }
budget() { awk -v key="$1" '$1 == key { print $2; exit }' "$budget_file"; }
produce_budget=$(budget produce_instructions_per_record)
fetch_budget=$(budget fetch_instructions_per_record)
[ -n "$produce_budget" ] && [ -n "$fetch_budget" ] || { echo "callgrind_guard: budget file lacks a figure" >&2; exit 1; }
status=0
if [ "$produce" -gt "$produce_budget" ]; then
  echo "callgrind_guard: FAIL produce ${produce} > budget ${produce_budget} instructions/record" >&2
  status=1
fi
if [ "$fetch" -gt "$fetch_budget" ]; then
  echo "callgrind_guard: FAIL fetch ${fetch} > budget ${fetch_budget} instructions/record" >&2
  status=1
fi
if [ "$status" = 0 ]; then
  echo "callgrind_guard: ok (budgets: produce ${produce_budget}, fetch ${fetch_budget} instructions/record)"
fi
exit "$status"
