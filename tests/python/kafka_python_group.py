"""A kafka-python consumer group (classic protocol) against a seedlog
cluster. Two members, each a KafkaConsumer on a thread of its own, share
the partitions of TOPIC and commit what they consumed (synchronously after
each batch, and automatically before a rebalance); B leaves and A takes over its
partitions; A leaves, and B, restarted, resumes at the committed offsets:
it reads the last phase and nothing older. The records are produced by
kafka-python's producer (acks=all), PER_PHASE per partition and phase.

Ownership is logged from the members' rebalance listeners in one global
order and replayed at the end: no partition is owned by two members at
once, and every record is consumed by the member that owned its partition
then.

Usage: kafka_python_group.py BOOTSTRAP TOPIC GROUP PARTITIONS PER_PHASE STRATEGY
STRATEGY is range or cooperative-sticky. Prints one line
"ok consumed=<records> redelivered=<records>" on success; exits non-zero
otherwise.
"""
import logging
import sys
import threading
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import CommitFailedError, KafkaError

bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
partitions, per_phase = int(sys.argv[4]), int(sys.argv[5])
if sys.argv[6] == "range":
    strategy = RangePartitionAssignor
else:
    # KIP-429 in kafka-python since 3.0.
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor as strategy
PHASE_TIMEOUT = 60
# kafka-python reports what goes wrong through logging.
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

lock = threading.Lock()
log = []  # ("assign" | "revoke", member, [partitions]) or ("consumed", member, partition, offset)
consumed = set()  # (partition, offset)


def fail(message):
    print(message, flush=True)
    sys.stdout.flush()
    # A thread cannot exit the process with sys.exit.
    import os

    os._exit(1)


def produce(phase):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [
        producer.send(topic, value=b"%d-%d-%d" % (phase, p, i), partition=p)
        for p in range(partitions)
        for i in range(per_phase)
    ]
    producer.flush()
    for f in futures:
        f.get(timeout=30)  # raises if any send failed
    producer.close()


class Member(threading.Thread):
    def __init__(self, name):
        super().__init__(name=name, daemon=True)
        self.member = name
        self.stopping = threading.Event()
        self.failure = None
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            enable_auto_commit=True,
            auto_commit_interval_ms=200,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=300,
            partition_assignment_strategy=[strategy],
        )
        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                # kafka-python runs listeners on its I/O thread, where a
                # blocking commit is refused; what was consumed since the
                # last batch's commit is auto-committed before the rebalance.
                with lock:
                    log.append(("revoke", member.member, sorted(tp.partition for tp in revoked)))

            def on_partitions_assigned(self, assigned):
                with lock:
                    log.append(("assign", member.member, sorted(tp.partition for tp in assigned)))

        self.consumer.subscribe([topic], listener=Listener())

    def commit(self):
        try:
            self.consumer.commit()
        except CommitFailedError as e:
            print(f"{self.member}: commit failed ({e}); its records will be redelivered", file=sys.stderr)

    def run(self):
        try:
            while not self.stopping.is_set():
                batches = self.consumer.poll(timeout_ms=100)
                for tp, messages in batches.items():
                    for m in messages:
                        with lock:
                            log.append(("consumed", self.member, m.partition, m.offset))
                            consumed.add((m.partition, m.offset))
                if batches:
                    self.commit()
            self.commit()
            self.consumer.close()  # LeaveGroup
        except KafkaError as e:
            self.failure = e

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
        if self.is_alive() or self.failure:
            fail(f"{self.member} did not stop cleanly: {self.failure}")


def owners():
    """Replays the log; fails on a violation; returns partition -> member."""
    owner = {}
    with lock:
        events = list(log)
    for event in events:
        kind, member = event[0], event[1]
        if kind == "assign":
            for p in event[2]:
                if owner.get(p, member) != member:
                    fail(f"partition {p} assigned to {member} while {owner[p]} owns it")
                owner[p] = member
        elif kind == "revoke":
            for p in event[2]:
                if owner.pop(p, None) != member:
                    fail(f"{member} revoked {p} it did not own")
        elif owner.get(event[2]) != member:
            fail(f"{member} consumed {event[2]}@{event[3]} without owning it")
    return owner


def wait_until(what, members, done):
    deadline = time.monotonic() + PHASE_TIMEOUT
    while not done():
        for m in members:
            if m.failure:
                fail(f"{m.member}: {m.failure}")
        if time.monotonic() > deadline:
            with lock:
                count = len(consumed)
            fail(f"not within {PHASE_TIMEOUT} s: {what} ({count} records consumed, owners {owners()})")
        time.sleep(0.05)


def consumed_count():
    with lock:
        return len(consumed)


phase = partitions * per_phase

# A and B share the partitions.
produce(0)
a, b = Member("A"), Member("B")
a.start()
b.start()
wait_until(
    "A and B share the partitions and consume the first phase",
    [a, b],
    lambda: consumed_count() == phase and set(owners().values()) == {"A", "B"},
)

# B leaves; A takes over its partitions.
b.stop()
produce(1)
wait_until(
    "A owns every partition and consumes the second phase",
    [a],
    lambda: consumed_count() == 2 * phase and len(owners()) == partitions and set(owners().values()) == {"A"},
)

# A leaves; B, restarted, resumes at the committed offsets.
a.stop()
with lock:
    before_restart = len(log)
produce(2)
b = Member("B")
b.start()
wait_until("restarted B consumes the third phase", [b], lambda: consumed_count() == 3 * phase)
b.stop()
owners()
with lock:
    resumed = [e for e in log[before_restart:] if e[0] == "consumed"]
    total = sum(1 for e in log if e[0] == "consumed")
for _, _, p, offset in resumed:
    if offset < 2 * per_phase:
        fail(f"restarted B re-read {p}@{offset} below the committed {2 * per_phase}")
print(f"ok consumed={len(consumed)} redelivered={total - len(consumed)}")
