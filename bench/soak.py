#!/usr/bin/env python3
"""Soak test (issue #7): a three-node seedlog cluster on 127.0.0.1 under a
steady acks=all idempotent producer and a tailing consumer (confluent-kafka,
librdkafka), while nodes are SIGKILLed and restarted at random intervals.

At the end every acknowledged record must have been read exactly once, at the
offset it was acknowledged with, in sending order per partition. Prints the
figures; exits 1 on any lost, duplicated or reordered record (or a fatal
producer error), 2 if the cluster did not come back in time.

Run it through bench/soak.sh.
"""

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "soak"
NODES = 3


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_base(rng):
    """A port P with P..P+2 and P+100..P+102 free on 127.0.0.1."""
    for _ in range(200):
        base = rng.randrange(30000, 38000, 10)
        ports = [base + i for i in range(NODES)] + [base + 100 + i for i in range(NODES)]
        ok = True
        for port in ports:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
    sys.exit("no free ports")


class Cluster:
    def __init__(self, binary, data_dir, base):
        self.binary, self.data_dir, self.base = binary, data_dir, base
        self.voters = ",".join(f"{n}@127.0.0.1:{base + 100 + n - 1}" for n in range(1, NODES + 1))
        self.procs = {}
        self.bootstrap = ",".join(f"127.0.0.1:{base + n - 1}" for n in range(1, NODES + 1))

    def start(self, node):
        node_dir = os.path.join(self.data_dir, f"node-{node}")
        os.makedirs(node_dir, exist_ok=True)
        logfile = open(os.path.join(self.data_dir, f"node-{node}.log"), "ab")
        self.procs[node] = subprocess.Popen(
            [self.binary, "serve", "--node-id", str(node), "--rack", f"az-{node}",
             "--listen", f"127.0.0.1:{self.base + node - 1}",
             "--controller-listen", f"127.0.0.1:{self.base + 100 + node - 1}",
             "--voters", self.voters, "--data-dir", node_dir],
            stdout=subprocess.DEVNULL, stderr=logfile,
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")))

    def kill(self, node):
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self):
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = {}

    def died(self):
        return [n for n, p in self.procs.items() if p.poll() is not None]


def topic_state(admin):
    """(leaders by partition, ISR sizes by partition, broker count) or None."""
    try:
        md = admin.list_topics(topic=TOPIC, timeout=5)
    except KafkaException:
        return None
    t = md.topics.get(TOPIC)
    if t is None or t.error is not None or not t.partitions:
        return None
    leaders = {p: pm.leader for p, pm in t.partitions.items()}
    isr = {p: len(pm.isrs) for p, pm in t.partitions.items()}
    return leaders, isr, len(md.brokers)


def wait_until(what, within, check):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    log(f"FAIL: no {what} within {within} s")
    return None


def fully_replicated(admin, partitions):
    state = topic_state(admin)
    if state is None:
        return None
    leaders, isr, brokers = state
    ok = (len(leaders) == partitions and all(l >= 0 for l in leaders.values())
          and all(n == NODES for n in isr.values()) and brokers == NODES)
    return leaders if ok else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seedlog", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--rate", type=int, default=1000, help="records offered per second")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--max-unavailable", type=float, default=60.0,
                    help="fail (exit 2) if no record is acked for this many seconds")
    ap.add_argument("--producer-debug", default="",
                    help="librdkafka debug contexts for the producer, e.g. eos,msg")
    ap.add_argument("--kill-every", type=float, default=20.0,
                    help="mean seconds between kills (uniform in [0.5x, 1.5x])")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    partitions = args.partitions
    base = free_base(rng)
    log(f"seed {seed}, {args.minutes} min, base port {base}, data dir {args.data_dir}, "
        f"binary {args.seedlog}")

    cluster = Cluster(args.seedlog, args.data_dir, base)
    for n in range(1, NODES + 1):
        cluster.start(n)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    def all_brokers():
        try:
            return len(admin.list_topics(timeout=5).brokers) == NODES
        except KafkaException:
            return False

    if not wait_until("cluster of 3 brokers", 60, all_brokers):
        cluster.stop()
        return 2
    fs = admin.create_topics([NewTopic(TOPIC, partitions, 3,
                                       config={"min.insync.replicas": "2"})])
    for f in fs.values():
        f.result()
    if not wait_until("topic led and fully replicated", 60,
                      lambda: fully_replicated(admin, partitions)):
        cluster.stop()
        return 2

    # ---- producer -------------------------------------------------------
    acked = []              # (partition, offset, seq) in ack order
    failed = {}             # error -> count
    ack_times = []          # monotonic time of each ack
    stop_producing = threading.Event()
    sent = [0]
    fatal = [None]

    def on_delivery(err, msg):
        if err is not None:
            failed[str(err)] = failed.get(str(err), 0) + 1
            if err.fatal():
                fatal[0] = str(err)
        else:
            acked.append((msg.partition(), msg.offset(), int(msg.key())))
            ack_times.append(time.monotonic())

    def produce():
        p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                      "enable.idempotence": True, "linger.ms": 5,
                      "message.timeout.ms": 60000,
                      **({"debug": args.producer_debug} if args.producer_debug else {})})
        start = time.monotonic()
        seq = 0
        while not stop_producing.is_set():
            due = int((time.monotonic() - start) * args.rate)
            while seq < due:
                try:
                    p.produce(TOPIC, key=str(seq), value=f"record-{seq:010d}",
                              partition=seq % partitions, on_delivery=on_delivery)
                except BufferError:
                    p.poll(0.05)
                    continue
                seq += 1
                sent[0] = seq
            p.poll(0.01)
        left = p.flush(90)
        if left:
            log(f"{left} records unanswered at the end")

    # ---- consumer (tails the topic all along) ---------------------------
    read = {p: {} for p in range(partitions)}   # partition -> offset -> seq
    rewritten = []           # (p, offset, first seq, later seq)
    redelivered = [0]
    stop_consuming = threading.Event()
    targets = {}

    def consume():
        c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "soak-reader",
                      "enable.auto.commit": False, "enable.partition.eof": False})
        c.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
        while True:
            if stop_consuming.is_set() and targets and all(
                    max(read[p].keys(), default=-1) + 1 >= targets[p] for p in range(partitions)):
                break
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            p, off, seq = msg.partition(), msg.offset(), int(msg.key())
            if off in read[p]:
                if read[p][off] != seq:
                    rewritten.append((p, off, read[p][off], seq))
                else:
                    redelivered[0] += 1
            read[p][off] = seq
        c.close()

    producer = threading.Thread(target=produce, daemon=True)
    consumer = threading.Thread(target=consume, daemon=True)
    producer.start()
    consumer.start()

    # ---- chaos ----------------------------------------------------------
    kills = []   # (node, was leader of, down s, back in ISR after restart s)
    broken = None
    end = time.monotonic() + args.minutes * 60
    while time.monotonic() < end and broken is None:
        time.sleep(min(max(0.0, end - time.monotonic()),
                       rng.uniform(0.5, 1.5) * args.kill_every))
        if time.monotonic() >= end:
            break
        if cluster.died():
            broken = f"node(s) {cluster.died()} died on their own"
            break
        state = topic_state(admin)
        leaders = state[0] if state else {}
        # Half the time the leader of a random partition, else any node.
        if leaders and rng.random() < 0.5:
            victim = leaders[rng.randrange(partitions)]
        else:
            victim = rng.randrange(1, NODES + 1)
        led = sorted(p for p, l in leaders.items() if l == victim)
        down = rng.uniform(0.5, 6.0)
        log(f"kill -9 node {victim} (leader of partitions {led}), restart in {down:.1f} s; "
            f"{len(acked)} acked so far")
        cluster.kill(victim)
        time.sleep(down)
        cluster.start(victim)
        t0 = time.monotonic()
        # Asked through the restarted node itself, so that a stale answer
        # from before the others noticed the kill does not count.
        own = AdminClient({"bootstrap.servers": f"127.0.0.1:{base + victim - 1}"})
        if not wait_until(f"node {victim} back in every ISR", 90,
                          lambda: fully_replicated(own, partitions)):
            broken = f"node {victim} did not rejoin every ISR within 90 s"
            break
        rejoin = time.monotonic() - t0
        log(f"node {victim} back in every ISR {rejoin:.1f} s after its restart")
        kills.append((victim, led, down, rejoin))

    # ---- drain and check ------------------------------------------------
    stopped_at = time.monotonic()
    stop_producing.set()
    producer.join(120)
    try:
        probe = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "soak-probe"})
        for p in range(partitions):
            targets[p] = probe.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
        probe.close()
    except KafkaException as e:
        log(f"FAIL: watermarks: {e}")
        broken = broken or "no watermarks"
        for p in range(partitions):
            targets[p] = 0
    stop_consuming.set()
    consumer.join(180)
    if consumer.is_alive():
        broken = broken or f"consumer did not reach the high watermarks {targets} in 180 s"
    cluster.stop()

    problems = []
    lost = 0
    last = {}
    for p, off, seq in acked:
        got = read[p].get(off)
        if got != seq:
            lost += 1
            if lost <= 20:
                problems.append(f"acked seq {seq} at partition {p} offset {off}: read {got}")
        if p in last and last[p] >= seq:
            problems.append(f"partition {p}: seq {seq} acked after seq {last[p]}")
        last[p] = seq
    seen = {}
    dups = 0
    reorders = 0
    for p in range(partitions):
        prev = None
        for off in sorted(read[p]):
            seq = read[p][off]
            if seq in seen:
                dups += 1
                problems.append(f"seq {seq} twice: {seen[seq]} and {(p, off)}")
            seen[seq] = (p, off)
            if prev is not None and seq <= prev:
                reorders += 1
                problems.append(f"partition {p}: seq {seq} at offset {off} after seq {prev}")
            prev = seq
    for r in rewritten:
        problems.append(f"partition {r[0]} offset {r[1]} read as seq {r[2]}, later as seq {r[3]}")

    # The gaps between acks, and from the last one to the end of producing.
    gaps = [b - a for a, b in zip(ack_times, ack_times[1:] + [stopped_at])]
    max_gap = max(gaps, default=0.0)
    total_read = sum(len(v) for v in read.values())
    log("---- figures ----")
    log(f"seed {seed}; ran {args.minutes} min at {args.rate} records/s offered")
    log(f"sent {sent[0]}, acked {len(acked)}, failed {sum(failed.values())} {failed}")
    log(f"read {total_read} distinct offsets (high watermarks {targets}), client re-deliveries "
        f"of the same offset {redelivered[0]}")
    log(f"kills {len(kills)}; max unavailability (longest gap between two acks) {max_gap:.2f} s")
    for i, (victim, led, down, rejoin) in enumerate(kills, 1):
        log(f"  kill {i}: node {victim}, leader of {led}, down {down:.1f} s, "
            f"back in every ISR {rejoin:.1f} s after restart")
    log(f"lost acked {lost}, duplicates {dups}, reorders {reorders}, rewritten offsets "
        f"{len(rewritten)}, fatal producer error {fatal[0]}")
    if max_gap > args.max_unavailable and not broken:
        broken = (f"no record acked for {max_gap:.1f} s (more than {args.max_unavailable} s); "
                  f"last ack at {len(acked)} records")
    if broken:
        log(f"FAIL: {broken}")
        return 2
    if problems or fatal[0]:
        for line in problems[:50]:
            log(f"PROBLEM: {line}")
        log(f"FAIL: {len(problems)} problems; node logs in {args.data_dir}")
        return 1
    if not acked:
        log("FAIL: nothing acked")
        return 1
    log("OK: every acked record read exactly once, in order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
