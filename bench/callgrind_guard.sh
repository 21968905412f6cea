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
# fetching everything back (fetch cost = the rest). Then the simulator:
# `seedlog sim run cluster-steady-state --seed 0` (3 brokers, ~100
# simulated s, every checker on), instructions per simulated event, which
# guards simulation speed the same way. Fails when a figure is above its
# budget. Needs valgrind (Debian: apt-get install valgrind) and a
# release build (it builds one if missing). Takes about half a minute.
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

# The simulator: one seed of the speed baseline. Its summary line says
# "events N"; the scenario must pass, or the count means nothing.
sim_out="$work/sim.out"
(cd "$repo" && RUST_LOG=off valgrind --tool=callgrind --callgrind-out-file="$sim_out" \
  "$bin" sim run cluster-steady-state --seed 0 >"$work/sim.log" 2>"$work/valgrind.log") \
  || { cat "$work/sim.log" "$work/valgrind.log" >&2; echo "callgrind_guard: the simulation failed" >&2; exit 1; }
sim_instructions=$(awk '/^(summary|totals):/ { print $2; exit }' "$sim_out")
sim_events=$(awk '$1 == "events" { print $2; exit }' "$work/sim.log")
[ -n "$sim_events" ] && [ "$sim_events" -gt 0 ] || { echo "callgrind_guard: no event count in the simulation's summary" >&2; exit 1; }
sim=$(( sim_instructions / sim_events ))
echo "callgrind: simulation ${sim} instructions/event (cluster-steady-state seed 0: ${sim_instructions} instructions, ${sim_events} events)"

if [ "$mode" = "--measure" ]; then exit 0; fi
[ -f "$budget_file" ] || { echo "callgrind_guard: no $budget_file" >&2; exit 1; }
budget() { awk -v key="$1" '$1 == key { print $2; exit }' "$budget_file"; }
produce_budget=$(budget produce_instructions_per_record)
fetch_budget=$(budget fetch_instructions_per_record)
sim_budget=$(budget sim_instructions_per_event)
[ -n "$produce_budget" ] && [ -n "$fetch_budget" ] && [ -n "$sim_budget" ] \
  || { echo "callgrind_guard: budget file lacks a figure" >&2; exit 1; }
status=0
if [ "$produce" -gt "$produce_budget" ]; then
  echo "callgrind_guard: FAIL produce ${produce} > budget ${produce_budget} instructions/record" >&2
  status=1
fi
if [ "$fetch" -gt "$fetch_budget" ]; then
  echo "callgrind_guard: FAIL fetch ${fetch} > budget ${fetch_budget} instructions/record" >&2
  status=1
fi
if [ "$sim" -gt "$sim_budget" ]; then
  echo "callgrind_guard: FAIL simulation ${sim} > budget ${sim_budget} instructions/event" >&2
  status=1
fi
if [ "$status" = 0 ]; then
  echo "callgrind_guard: ok (budgets: produce ${produce_budget}, fetch ${fetch_budget} instructions/record; simulation ${sim_budget} instructions/event)"
fi
exit "$status"
