#!/usr/bin/env bash
# seedlog benchmark harness: the same workloads against seedlog and its
# peers (librdkafka's mock cluster, Tansu), one after the other in one run,
# on 127.0.0.1 only, with the machine's physical limits measured in the
# same run. Prints a table (msgs/s, MB/s, latency percentiles, the ratio
# seedlog/peer) and writes it to bench/results/<date>.md.
#
#   bench/run.sh [--quick] [--records N] [--sections limits,idle,a,b,c,d,e,f]
#                [--repeat N] [--no-tansu] [--base-port P]
#
# --quick       100,000 records per workload (default 1,000,000), shorter
#               latency run and dd file: a couple of minutes once built.
# --records N   records per produce/consume workload.
# --sections    run only these (a/b/c run together; d needs a).
# --repeat N    run (a)/(b)/(c), and (e), N times each, every pass with
#               fresh brokers as a single pass has; each row is the median
#               pass (by msgs/s) and its note lists every pass's MB/s.
#               Default 1.
# --no-tansu    leave Tansu out (it says so in the table).
# --base-port P ports P.. P+112 on 127.0.0.1 (default 19092).
#
# Environment: BENCH_BUILD_DIR (scratch: librdkafka, tools, Tansu, broker
# data; default bench/.build), CARGO_TARGET_DIR, CARGO_BUILD_JOBS (default
# 1), BENCH_CMD_TIMEOUT (seconds per client command), TANSU_INSTALL_TIMEOUT.
# See bench/README.md for what each workload is and what the peers are.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

records=1000000
quick=0
sections="limits,idle,a,b,c,d,e,f"
use_tansu=1
base_port=19092
repeat=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; records=100000 ;;
    --records) records="$2"; shift ;;
    --sections) sections="$2"; shift ;;
    --no-tansu) use_tansu=0 ;;
    --base-port) base_port="$2"; shift ;;
    --repeat) repeat="$2"; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --repeat wants a positive count, not '$repeat'" >&2; exit 2; }
want() { [[ ",$sections," == *",$1,"* ]]; }
if (want c || want d) && ! want a; then sections="$sections,a"; fi

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
build="${BENCH_BUILD_DIR:-$repo/bench/.build}"
mkdir -p "$build"
build="$(cd "$build" && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
seedlog="$target/release/seedlog"
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
run_dir="$build/run-$stamp"
data="$run_dir/data"
logs="$run_dir/logs"
jsonl="$run_dir/results.jsonl"
mkdir -p "$data" "$logs"
: > "$jsonl"
if [ "$quick" = 1 ]; then cmd_timeout="${BENCH_CMD_TIMEOUT:-180}"; dd_mb=256; lat_secs=5
else cmd_timeout="${BENCH_CMD_TIMEOUT:-600}"; dd_mb=1024; lat_secs=10; fi
port_seedlog=$base_port
port_tansu=$((base_port + 1))
port_iperf=$((base_port + 50))
port_cluster=$((base_port + 10)) # client ports +10..+12, controller ports +110..+112
report() { python3 "$repo/bench/report.py" "$@"; }
say() { echo "== $*" >&2; }

# --- cleanup: stop what this script started, by pid -------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 1
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$data"
}
trap cleanup EXIT

# --- preflight -----------------------------------------------------------
disk_used() { df --output=pcent "$1" | tail -1 | tr -dc '0-9'; }
if [ "$(disk_used "$build")" -gt 80 ]; then
  echo "run.sh: the disk of $build is over 80% full; the run writes a few GB" >&2
  exit 1
fi
for p in $port_seedlog $port_tansu $port_iperf $port_cluster $((port_cluster + 1)) \
  $((port_cluster + 2)) $((port_cluster + 100)) $((port_cluster + 101)) $((port_cluster + 102)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "run.sh: 127.0.0.1:$p is in use; pick another --base-port" >&2
    exit 1
  fi
done
command -v python3 >/dev/null || { echo "run.sh: needs python3" >&2; exit 1; }

# --- builds ----------------------------------------------------------------
tansu="$build/tansu-root/bin/tansu"
tansu_reason=""
tansu_install_pid=""
if [ "$use_tansu" = 0 ]; then
  tansu_reason="left out (--no-tansu)"
elif [ ! -x "$tansu" ]; then
  # Tansu's default build has no storage engine: memory:// needs the
  # dynostore feature. Long (hundreds of crates on one core): in the
  # background while the other brokers run.
  say "installing Tansu 0.6.0 in the background (log: $build/tansu-install.log)"
  CARGO_TARGET_DIR="$build/tansu-target" timeout "${TANSU_INSTALL_TIMEOUT:-5400}" \
    nice -n 10 cargo install tansu --version 0.6.0 --locked --features dynostore \
    --root "$build/tansu-root" >"$build/tansu-install.log" 2>&1 &
  tansu_install_pid=$!
  PIDS+=("$tansu_install_pid")
fi

say "building seedlog (release)"
cargo build --release --bin seedlog -q
say "building librdkafka, rdkafka_performance, mock_broker, create_topics"
tools="$("$repo/bench/build_tools.sh" "$build")"
perf="$tools/rdkafka_performance"

if want limits && ! command -v iperf3 >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing iperf3"
    # No daemon: iperf3 runs only as this script starts it, on 127.0.0.1.
    echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3 >/dev/null 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3 >/dev/null 2>&1; } || true
  fi
fi

# --- brokers -----------------------------------------------------------------
BROKER_PID=""
BOOTSTRAP=""
starts=0
wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}
rss_kb() { # pid field(VmRSS|VmHWM)
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}
tansu_ready() {
  [ -z "$tansu_reason" ] || return 1
  if [ -n "$tansu_install_pid" ]; then
    say "waiting for the Tansu install to finish"
    if ! wait "$tansu_install_pid"; then
      tansu_reason="cargo install tansu failed or timed out: $(grep -m1 -E '^error' "$build/tansu-install.log" || tail -1 "$build/tansu-install.log")"
    fi
    tansu_install_pid=""
  fi
  if [ -z "$tansu_reason" ] && [ ! -x "$tansu" ]; then
    tansu_reason="not installed"
  fi
  [ -z "$tansu_reason" ]
}
# start_broker NAME TOPIC:PARTITIONS... : sets BROKER_PID and BOOTSTRAP.
start_broker() {
  local name="$1"; shift
  starts=$((starts + 1))
  local log="$logs/$name.$starts.log"
  case "$name" in
    seedlog|seedlog-nf)
      rm -rf "$data/seedlog"
      local durability=()
      # Kafka's own default: acks answered from the page cache, the fsync
      # follows; what the peers' memory-only rows compare with fairly.
      [ "$name" = seedlog-nf ] && durability=(--no-flush-before-ack)
      "$seedlog" serve --listen "127.0.0.1:$port_seedlog" --data-dir "$data/seedlog" ${durability[@]+"${durability[@]}"} >"$log" 2>&1 &
      BROKER_PID=$!
      PIDS+=("$BROKER_PID")
      BOOTSTRAP="127.0.0.1:$port_seedlog"
      wait_port "$port_seedlog" 30 || { echo "seedlog did not start (see $log)" >&2; return 1; }
      ;;
    mock)
      "$tools/mock_broker" "$@" >"$log" 2>&1 &
      BROKER_PID=$!
      PIDS+=("$BROKER_PID")
      local i
      for ((i = 0; i < 100; i++)); do
        BOOTSTRAP="$(sed -n 's/^BOOTSTRAP=//p' "$log" 2>/dev/null || true)"
        [ -n "$BOOTSTRAP" ] && break
        sleep 0.1
      done
      [ -n "$BOOTSTRAP" ] || { echo "mock_broker did not start (see $log)" >&2; return 1; }
      ;;
    tansu)
      # Memory storage: nothing on disk, like the mock.
      "$tansu" broker --listener-url "tcp://127.0.0.1:$port_tansu" \
        --advertised-listener-url "tcp://127.0.0.1:$port_tansu" \
        --storage-engine "memory://tansu/" >"$log" 2>&1 &
      BROKER_PID=$!
      PIDS+=("$BROKER_PID")
      BOOTSTRAP="127.0.0.1:$port_tansu"
      wait_port "$port_tansu" 30 || { echo "tansu did not start (see $log)" >&2; return 1; }
      ;;
  esac
  if [ "$name" != mock ] && [ $# -gt 0 ]; then
    local specs=() t
    for t in "$@"; do specs+=("$t:1"); done
    timeout 120 "$tools/create_topics" "$BOOTSTRAP" "${specs[@]}" >>"$log" 2>&1 \
      || { echo "$name: creating topics failed (see $log)" >&2; return 1; }
  fi
}
stop_broker() {
  [ -n "$BROKER_PID" ] || return 0
  # `seedlog cluster` stops its nodes on SIGTERM; they are killed below if
  # they outlive it.
  local kids
  kids="$(pgrep -P "$BROKER_PID" || true)"
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 150; i++)); do
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  local kid
  for kid in $kids; do kill -KILL "$kid" 2>/dev/null || true; done
  BROKER_PID=""
  rm -rf "$data/seedlog"
}
# broker_alive NAME: fails with a row-ready reason if the broker died.
broker_alive() { kill -0 "$BROKER_PID" 2>/dev/null; }

# --- client commands -----------------------------------------------------------
# produce LOG TOPIC SIZE COUNT ACKS [extra args]
produce() {
  local log="$1" topic="$2" size="$3" count="$4" acks="$5"; shift 5
  timeout "$cmd_timeout" "$perf" -P -b "$BOOTSTRAP" -t "$topic" -s "$size" -c "$count" \
    -a "$acks" -X linger.ms=5 "$@" >"$log" 2>&1 || true
}
# consume LOG TOPIC PARTITIONS COUNT
consume() {
  local log="$1" topic="$2" partitions="$3" count="$4" p args=()
  for ((p = 0; p < partitions; p++)); do args+=(-p "$p"); done
  timeout "$cmd_timeout" "$perf" -C -b "$BOOTSTRAP" -t "$topic" "${args[@]}" -o beginning \
    -c "$count" >"$log" 2>&1 || true
}
size_label() { if [ "$1" = 100 ]; then echo "100 B"; else echo "1 KiB"; fi; }
brokers=(seedlog seedlog-nf mock)
[ "$use_tansu" = 1 ] && brokers+=(tansu)
broker_label() {
  case "$1" in
    mock) echo "librdkafka mock" ;;
    seedlog-nf) echo "seedlog (no fsync before ack)" ;;
    *) echo "$1" ;;
  esac
}
unavailable_row() { # section workload
  report row "$jsonl" --section "$1" --workload "$2" --broker tansu --note "tansu: unavailable ($tansu_reason)"
}

# repeated PASS: runs the function PASS --repeat times, each pass's rows
# into a file of their own, then one row per workload into the results:
# the median pass (bench/report.py merge). Passes, not back-to-back runs
# on one broker: a broker that already took a run's gigabytes writes the
# next into a fuller page cache, and a drift of the machine spreads over
# the passes rather than landing on one workload.
repeated() {
  local pass="$1" r main="$jsonl" main_logs="$logs" files=()
  if [ "$repeat" = 1 ]; then "$pass"; return; fi
  for ((r = 1; r <= repeat; r++)); do
    say "$pass: pass $r of $repeat"
    jsonl="$run_dir/$pass.$r.jsonl"
    : >"$jsonl"
    # Each pass logs apart: a failure's note names its own pass's log.
    logs="$main_logs/pass$r"
    mkdir -p "$logs"
    "$pass"
    files+=("$jsonl")
  done
  jsonl="$main"
  logs="$main_logs"
  report merge "$jsonl" "${files[@]}" || true
}

# --- physical limits -----------------------------------------------------------
if want limits; then
  say "physical limits: loopback TCP (iperf3), sequential disk write (dd)"
  if command -v iperf3 >/dev/null; then
    iperf3 -s -B 127.0.0.1 -p "$port_iperf" -1 >"$logs/iperf3-server.log" 2>&1 &
    iperf_pid=$!
    PIDS+=("$iperf_pid")
    # Not wait_port: a test connection would be the one-off server's client.
    for ((i = 0; i < 50; i++)); do
      ss -Hltn "sport = :$port_iperf" 2>/dev/null | grep -q . && break
      sleep 0.1
    done
    mbs=""
    if timeout 60 iperf3 -c 127.0.0.1 -p "$port_iperf" -t 5 -J >"$logs/iperf3.json" 2>&1; then
      mbs=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["end"]["sum_received"]["bits_per_second"]/8e6)' "$logs/iperf3.json" 2>/dev/null || true)
    fi
    if [ -n "$mbs" ]; then
      report row "$jsonl" --section limits --workload "loopback TCP, 1 stream, 5 s" --broker iperf3 --mb-s "$mbs"
    else
      report row "$jsonl" --section limits --workload "loopback TCP" --broker iperf3 --note "FAILED (see $logs/iperf3.json)"
    fi
    wait "$iperf_pid" 2>/dev/null || true
  else
    report row "$jsonl" --section limits --workload "loopback TCP" --broker iperf3 --note "iperf3: unavailable (not installed, no apt-get as root)"
  fi
  # MB/s from dd's last line: "N bytes (...) copied, S s, ..."
  dd_rate() { awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^copied/) { print $1 / $(i+1) / 1e6; exit } }'; }
  for flag in oflag=direct conv=fdatasync; do
    out=$( { dd if=/dev/zero of="$data/dd.bin" bs=1M count="$dd_mb" "$flag" 2>&1 || true; } | tail -1)
    rm -f "$data/dd.bin"
    mbs=$(echo "$out" | dd_rate)
    report row "$jsonl" --section limits --workload "disk write, dd bs=1M count=$dd_mb $flag" --broker dd --mb-s "${mbs:-0}" --note "$(df --output=source "$data" | tail -1)"
  done
  # What a page cache write costs depends on where the page comes from. On
  # a VM whose balloon reports free guest memory to the host (free page
  # reporting), a page the kernel freed more than ~2 s ago must be faulted
  # in by the host again; one freed just before is reused as is. Brokers
  # that write files pay the first price for every page they keep.
  sleep 5
  fresh=$( { dd if=/dev/zero of="$data/dd-a.bin" bs=1M count="$dd_mb" 2>&1 || true; } | tail -1 | dd_rate)
  rm -f "$data/dd-a.bin"
  reused=$( { dd if=/dev/zero of="$data/dd-b.bin" bs=1M count="$dd_mb" 2>&1 || true; } | tail -1 | dd_rate)
  report row "$jsonl" --section limits --workload "page cache write, dd bs=1M count=$dd_mb, no sync, memory idle 5 s" --broker dd --mb-s "${fresh:-0}" --note "slow only if the host took the freed pages back meanwhile (free page reporting); it does not always"
  report row "$jsonl" --section limits --workload "page cache write, dd bs=1M count=$dd_mb, no sync, memory just freed" --broker dd --mb-s "${reused:-0}" --note "the pages of the file before, deleted just before"
  sync "$data/dd-b.bin" 2>/dev/null || sync
  out=$( { dd if="$data/dd-b.bin" of=/dev/null bs=4M iflag=direct 2>&1 || true; } | tail -1)
  report row "$jsonl" --section limits --workload "disk read, dd bs=4M iflag=direct" --broker dd --mb-s "$(echo "$out" | dd_rate)" --note "what seedlog reads before a file's page cache window with"
  rm -f "$data/dd-b.bin"
fi

# --- idle memory ---------------------------------------------------------------
if want idle; then
  for b in "${brokers[@]}"; do
    [ "$b" = seedlog-nf ] && continue # the same process as seedlog's row
    if [ "$b" = tansu ] && ! tansu_ready; then unavailable_row idle "idle RSS"; continue; fi
    say "$b: idle RSS"
    start_broker "$b"
    sleep 2
    rss=$(rss_kb "$BROKER_PID" VmRSS)
    report row "$jsonl" --section idle --workload "idle RSS (VmRSS)" --broker "$(broker_label "$b")" \
      --note "$(awk -v k="$rss" 'BEGIN { printf "%.1f MB", k / 1024 }')"
    stop_broker
  done
fi

# --- (a) (b) (c): produce and consume --------------------------------------------
pass_abc() {
  if want a || want b; then
    for b in "${brokers[@]}"; do
      for size in 100 1024; do
        section=a; [ "$size" = 1024 ] && section=b
        want "$section" || continue
        for parts in 1 3; do
          label="$(size_label "$size"), $parts partition$([ "$parts" = 1 ] || echo s)"
          if [ "$b" = tansu ] && ! tansu_ready; then
            unavailable_row "$section" "produce $label, acks=1"
            unavailable_row "$section" "produce $label, acks=all"
            want c && unavailable_row c "consume $label"
            continue
          fi
          say "$b: $records records of $(size_label "$size"), $parts partition(s)"
          if ! start_broker "$b" "ack1:$parts" "ackall:$parts"; then
            report row "$jsonl" --section "$section" --workload "produce $label" --broker "$(broker_label "$b")" --note "FAILED: broker did not start"
            stop_broker; continue
          fi
          produce "$logs/$b-p$size-$parts-a1.log" ack1 "$size" "$records" 1
          report produce "$jsonl" "$logs/$b-p$size-$parts-a1.log" --section "$section" \
            --workload "produce $label, acks=1" --broker "$(broker_label "$b")" --size "$size" --expect "$records" || true
          if want c; then
            consume "$logs/$b-c$size-$parts.log" ack1 "$parts" "$records"
            report consume "$jsonl" "$logs/$b-c$size-$parts.log" --section c \
              --workload "consume $label" --broker "$(broker_label "$b")" --size "$size" --expect "$records" || true
          fi
          produce "$logs/$b-p$size-$parts-aall.log" ackall "$size" "$records" -1
          report produce "$jsonl" "$logs/$b-p$size-$parts-aall.log" --section "$section" \
            --workload "produce $label, acks=all" --broker "$(broker_label "$b")" --size "$size" --expect "$records" || true
          broker_alive || echo "$b died during the workload (see $logs)" >&2
          stop_broker
        done
      done
    done
  fi
}
repeated pass_abc

# --- (d) end-to-end latency at a fixed rate ---------------------------------------
if want d; then
  # One rate for every broker: half of the lowest maximum measured above
  # (100 B, 1 partition, acks=1), so each gets the same offered load.
  rate=$(python3 - "$jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
m = [r["msgs_s"] for r in rows if r["section"] == "a" and r["workload"] == "produce 100 B, 1 partition, acks=1"
     and r["msgs_s"] and not r["note"].startswith("FAILED")]
print(int(min(m) / 2) if m else 0)
EOF
)
  if [ "$rate" -le 0 ]; then
    say "(d) skipped: no maximum measured in (a)"
    rate=""
  fi
  # Also at a light fixed load, where the broker, not the 2-core machine
  # shared by producer, consumer and broker, sets the latency.
  for rate in 10000 $rate; do
    count=$((rate * lat_secs))
    workload="100 B at $rate msgs/s, 1 partition, acks=1, linger.ms=0"
    for b in "${brokers[@]}"; do
      if [ "$b" = tansu ] && ! tansu_ready; then unavailable_row d "end-to-end $workload"; continue; fi
      say "$b: latency, $count records at $rate msgs/s"
      start_broker "$b" "lat:1" || { stop_broker; continue; }
      e2e="$logs/$b-lat-$rate-e2e.txt"; ack="$logs/$b-lat-$rate-ack.txt"
      # The consumer waits at the end of the empty partition first.
      timeout $((lat_secs + 60)) "$perf" -C -b "$BOOTSTRAP" -t lat -p 0 -o end -c "$count" -l -A "$e2e" \
        >"$logs/$b-lat-$rate-consumer.log" 2>&1 &
      consumer_pid=$!
      sleep 3
      timeout $((lat_secs + 60)) "$perf" -P -b "$BOOTSTRAP" -t lat -p 0 -s 100 -c "$count" -a 1 -r "$rate" -l -A "$ack" \
        -X linger.ms=0 >"$logs/$b-lat-$rate-producer.log" 2>&1 || true
      wait "$consumer_pid" || true
      report latency "$jsonl" "$e2e" --section d --workload "end-to-end $workload" \
        --broker "$(broker_label "$b")" --producer-log "$logs/$b-lat-$rate-producer.log" --expect "$count" --skip "$rate"
      report latency "$jsonl" "$ack" --section d --workload "produce to ack $workload" \
        --broker "$(broker_label "$b")" --producer-log "$logs/$b-lat-$rate-producer.log" --expect "$count" --skip "$rate"
      stop_broker
    done
  done
fi

# --- (e) three seedlog brokers, RF=3, acks=all --------------------------------------
pass_e() {
  if want e; then
    for size in 100 1024; do
      say "seedlog cluster: 3 brokers, RF=3, acks=all, $(size_label "$size")"
      rm -rf "$data/cluster"
      starts=$((starts + 1))
      clog="$logs/cluster.$starts.log"
      "$seedlog" cluster --brokers 3 --data-dir "$data/cluster" --base-port "$port_cluster" >"$clog" 2>&1 &
      BROKER_PID=$!
      PIDS+=("$BROKER_PID")
      BOOTSTRAP=""
      for ((i = 0; i < 300; i++)); do
        # Not anchored: the cluster's own lines and its nodes' prefixed lines
        # can interleave mid-line ("node-2 | BOOTSTRAP=...").
        BOOTSTRAP="$( { grep -o 'BOOTSTRAP=[^ ]*' "$clog" 2>/dev/null || true; } | head -1 | cut -d= -f2)"
        [ -n "$BOOTSTRAP" ] && break
        sleep 0.1
      done
      if [ -z "$BOOTSTRAP" ] || ! timeout 180 "$tools/create_topics" --brokers 3 "$BOOTSTRAP" rf3p1:1:3 rf3p3:3:3 >"$clog.topics" 2>&1; then
        report row "$jsonl" --section e --workload "produce $(size_label "$size")" --broker "seedlog x3 RF=3" --note "FAILED: cluster did not come up (see $clog, $clog.topics)"
        stop_broker; rm -rf "$data/cluster"; continue
      fi
      for parts in 1 3; do
        label="$(size_label "$size"), $parts partition$([ "$parts" = 1 ] || echo s)"
        produce "$logs/cluster-p$size-$parts.log" "rf3p$parts" "$size" "$records" -1
        report produce "$jsonl" "$logs/cluster-p$size-$parts.log" --section e \
          --workload "produce $label, acks=all" --broker "seedlog x3 RF=3" --size "$size" --expect "$records" || true
      done
      rss=0
      for pid in $(pgrep -P "$BROKER_PID" || true); do rss=$((rss + $(rss_kb "$pid" VmHWM))); done
      report row "$jsonl" --section e --workload "peak RSS of the three nodes, $(size_label "$size") runs" \
        --broker "seedlog x3 RF=3" --note "$(awk -v k="$rss" 'BEGIN { printf "%.1f MB", k / 1024 }')"
      stop_broker
      rm -rf "$data/cluster"
    done
  fi
}
repeated pass_e

# --- (f) 1,000 partitions, 100 producers ---------------------------------------------
if want f; then
  producers=100
  per=$((records / producers))
  for b in "${brokers[@]}"; do
    if [ "$b" = tansu ] && ! tansu_ready; then unavailable_row f "1000 partitions, $producers producers"; continue; fi
    say "$b: 1,000 partitions, $producers producers x $per records of 100 B"
    if [ "$b" = mock ]; then
      # The mock creates its topics at start: its idle RSS is the idle row.
      start_broker mock || { stop_broker; continue; }
      idle=$(rss_kb "$BROKER_PID" VmRSS)
      stop_broker
      start_broker mock "many:1000" || { stop_broker; continue; }
    else
      start_broker "$b" || { stop_broker; continue; }
      sleep 1
      idle=$(rss_kb "$BROKER_PID" VmRSS)
      timeout 300 "$tools/create_topics" "$BOOTSTRAP" "many:1000:1" >>"$logs/$b.$starts.log" 2>&1 \
        || { report row "$jsonl" --section f --workload "1000 partitions, $producers producers" --broker "$(broker_label "$b")" --note "FAILED: creating 1000 partitions"; stop_broker; continue; }
    fi
    sleep 1
    created=$(rss_kb "$BROKER_PID" VmRSS)
    started=$(date +%s%N)
    pids=()
    for ((i = 0; i < producers; i++)); do
      timeout "$cmd_timeout" "$perf" -P -b "$BOOTSTRAP" -t many -s 100 -c "$per" -a 1 -X linger.ms=5 \
        >"$logs/$b-many-$i.log" 2>&1 &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    ended=$(date +%s%N)
    peak=$(rss_kb "$BROKER_PID" VmHWM)
    after=$(rss_kb "$BROKER_PID" VmRSS)
    delivered=$(for ((i = 0; i < producers; i++)); do
      { grep -E '^% [0-9]+ messages produced' "$logs/$b-many-$i.log" || true; } | tail -1 | awk '{ print $7 }'
    done | awk '{ s += $1 } END { print s + 0 }')
    secs=$(awk -v a="$started" -v b="$ended" 'BEGIN { print (b - a) / 1e9 }')
    msgs=$(awk -v d="$delivered" -v s="$secs" 'BEGIN { print d / s }')
    mbs=$(awk -v d="$delivered" -v s="$secs" 'BEGIN { print d * 100 / s / 1e6 }')
    note=$(awk -v i="$idle" -v c="$created" -v p="$peak" -v a="$after" -v n="$producers" -v d="$delivered" -v t="$records" -v s="$secs" 'BEGIN {
      printf "%d/%d delivered in %.1f s wall (process start-up included); RSS idle %.1f MB, with 1000 partitions %.1f MB (%.1f KB/partition), peak %.1f MB under load (%.0f KB per producer connection incl. in-flight data), %.1f MB after",
        d, t, s, i / 1024, c / 1024, (c - i) / 1000, p / 1024, (p - c) / n, a / 1024 }')
    [ "$delivered" -lt "$records" ] && note="FAILED: $note"
    report row "$jsonl" --section f --workload "1000 partitions, $producers producers, 100 B, acks=1" \
      --broker "$(broker_label "$b")" --msgs-s "$msgs" --mb-s "$mbs" --note "$note"
    stop_broker
  done
fi

# --- the table -------------------------------------------------------------------------
mkdir -p "$repo/bench/results"
out="$repo/bench/results/$(date -u +%Y-%m-%d).md"
[ -e "$out" ] && out="$repo/bench/results/$stamp.md"
{
  echo "# seedlog benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- command: \`bench/run.sh $([ "$quick" = 1 ] && echo --quick) --records $records --sections $sections$([ "$repeat" = 1 ] || echo " --repeat $repeat")$([ "$use_tansu" = 1 ] || echo " --no-tansu")\`"
  echo "- commit: $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "- machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
  echo "- load generator: librdkafka $(strings "$perf" | grep -m1 -oE '^2\.[0-9]+\.[0-9]+$' || echo 2.12.1) rdkafka_performance, linger.ms=5 (0 in (d)), no compression, not idempotent"
  echo "- seedlog: \`seedlog serve\` defaults (acks=1 and acks=all acknowledged after fsync); seedlog (no fsync before ack): \`seedlog serve --no-flush-before-ack\` (acknowledged from the page cache, fsync after, as Kafka does by default); peers keep records in memory only"
  echo "- seedlog/peer column: on a peer row, seedlog (defaults)/that peer; on a seedlog row, that row against the best peer of the workload"
  echo "- MB/s are 10^6 bytes of record values per second; seedlog/peer > 1 means seedlog is faster (for (d): < 1 means lower latency)"
  echo "- logs of this run: $logs (removed with BENCH_BUILD_DIR)"
  report table "$jsonl"
} >"$out"
cp "$jsonl" "${out%.md}.jsonl"
cat "$out"
echo
echo "written to $out" >&2
