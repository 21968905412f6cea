#!/usr/bin/env bash
# Soak test (issue #7): three `seedlog serve` nodes on 127.0.0.1, a steady
# acks=all idempotent producer and a tailing consumer (confluent-kafka), nodes
# SIGKILLed and restarted at random; at the end every acked record must have
# been read exactly once, in order. Exit 0 OK, 1 lost/duplicate/reorder,
# 2 cluster did not recover.
#
#   bench/soak.sh [--minutes N] [--seed S] [--rate R] [--kill-every SECONDS]
#                 [--seedlog BIN] [--data-dir DIR]
#
# Defaults: 1 minute, the binary from $SEEDLOG_BIN or target/release (built if
# missing), a fresh temporary data dir (kept on failure).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
bin="${SEEDLOG_BIN:-}"
dir=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seedlog) bin="$2"; shift 2 ;;
    --data-dir) dir="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$bin" ]; then
  bin="$root/target/release/seedlog"
  (cd "$root" && cargo build --release --bin seedlog)
fi
python3 -c 'import confluent_kafka' 2>/dev/null || {
  echo "soak: needs confluent-kafka (pip install confluent-kafka)" >&2; exit 2; }
keep=1
if [ -z "$dir" ]; then dir="$(mktemp -d /tmp/seedlog-soak.XXXXXX)"; keep=0; fi
status=0
python3 "$here/soak.py" --seedlog "$bin" --data-dir "$dir" "${args[@]}" || status=$?
if [ "$status" -eq 0 ] && [ "$keep" -eq 0 ]; then rm -rf "$dir"; else echo "soak: data and node logs in $dir"; fi
exit "$status"
