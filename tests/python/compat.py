"""The Python clients against a seedlog cluster, for the compatibility
matrix: confluent-kafka (librdkafka underneath) and kafka-python (pure
Python), driven through one small adapter each so that every case checks
the same things the same way.

Usage: compat.py CLIENT CASE BOOTSTRAP TOPIC ARGS...
  CLIENT  confluent-kafka | kafka-python
  CASE    produce PARTITIONS RECORDS    acks=all (idempotent) producer writes
                                        record i, key "i", value "value-%06d",
                                        to partition i % PARTITIONS; the Rust
                                        side reads them back with librdkafka
          consume PARTITIONS RECORDS    reads what the Rust side produced in
                                        that layout, from the beginning; each
                                        partition in offset order, no gaps
          compression RECORDS           RECORDS records per codec (gzip,
                                        snappy, lz4, zstd), codec k to
                                        partition k, read back by this client
          admin                         creates TOPIC (3 partitions, 3
                                        replicas, retention.ms=123456),
                                        describes it, its configs, lists and
                                        deletes it
          group GROUP PARTITIONS PER_PHASE STRATEGY
                                        two members share the partitions, one
                                        leaves, a restarted one resumes at the
                                        commits; STRATEGY range,
                                        cooperative-sticky or consumer (KIP-848,
                                        confluent-kafka only)
Prints one line starting with "ok" on success; exits non-zero otherwise.
"""
import logging
import os
import sys
import threading
import time

CODECS = ["gzip", "snappy", "lz4", "zstd"]
TIMEOUT = 60

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def fail(message):
    print(message, flush=True)
    os._exit(1)  # also from a member's thread


def record_value(i):
    return "value-%06d" % i


def compressed_value(codec, i):
    # Repetitive payloads, so every codec actually shrinks the batch; the
    # same as common::compressed_value on the Rust side.
    return "%s-value-%06d-%s" % (codec, i, "abc" * (i % 20))


class Confluent:
    def __init__(self, bootstrap):
        import confluent_kafka
        import confluent_kafka.admin

        self.ck = confluent_kafka
        self.admin_module = confluent_kafka.admin
        self.bootstrap = bootstrap

    def produce(self, topic, records, compression=None):
        config = {"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
        if compression:
            config["compression.type"] = compression
        producer = self.ck.Producer(config)
        failures = []

        def delivered(err, _msg):
            if err is not None:
                failures.append(err)

        for partition, key, value in records:
            while True:
                try:
                    producer.produce(topic, value=value, key=key, partition=partition, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        if producer.flush(TIMEOUT) != 0 or failures:
            fail(f"not every record acknowledged: {failures[:3]}")

    def read(self, topic, partitions, count):
        consumer = self.ck.Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": "compat-reader", "enable.auto.commit": False}
        )
        consumer.assign([self.ck.TopicPartition(topic, p, self.ck.OFFSET_BEGINNING) for p in range(partitions)])
        read = {p: [] for p in range(partitions)}
        total = 0
        deadline = time.monotonic() + TIMEOUT
        while total < count:
            if time.monotonic() > deadline:
                fail(f"read {total} of {count} records")
            for m in consumer.consume(num_messages=500, timeout=0.2):
                if m.error():
                    fail(f"consumer error: {m.error()}")
                key = m.key().decode() if m.key() is not None else None
                read[m.partition()].append((m.offset(), key, m.value().decode()))
                total += 1
        consumer.close()
        return read

    def member(self, name, group, strategy, listener):
        config = {
            "bootstrap.servers": self.bootstrap,
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 200,
        }
        if strategy == "consumer":
            config["group.protocol"] = "consumer"
        else:
            config.update(
                {"partition.assignment.strategy": strategy, "session.timeout.ms": 6000, "heartbeat.interval.ms": 300}
            )
        return ConfluentMember(self.ck, config, listener)

    def admin(self, topic):
        admin = self.admin_module.AdminClient({"bootstrap.servers": self.bootstrap})
        new = self.admin_module.NewTopic(topic, 3, 3, config={"retention.ms": "123456"})
        for future in admin.create_topics([new], operation_timeout=10).values():
            future.result()

        def describe():
            result = admin.describe_topics(self.ck.TopicCollection([topic]))[topic].result()
            return [
                (p.id, p.leader.id if p.leader else -1, [r.id for r in p.replicas], [r.id for r in p.isr])
                for p in result.partitions
            ]

        def configs():
            resource = self.admin_module.ConfigResource(self.admin_module.ResourceType.TOPIC, topic)
            entries = admin.describe_configs([resource])[resource].result()
            return {name: entry.value for name, entry in entries.items()}

        def listed():
            return set(admin.list_topics(timeout=10).topics)

        def delete():
            for future in admin.delete_topics([topic], operation_timeout=10).values():
                future.result()

        return describe, configs, listed, delete


class ConfluentMember:
    def __init__(self, ck, config, listener):
        self.ck = ck
        self.consumer = ck.Consumer(config)
        self.consumer.subscribe(
            [listener.topic],
            on_assign=lambda _c, tps: listener.assigned([tp.partition for tp in tps]),
            on_revoke=lambda _c, tps: listener.revoked([tp.partition for tp in tps]),
            on_lost=lambda _c, tps: listener.revoked([tp.partition for tp in tps]),
        )

    def poll(self):
        batch = []
        for m in self.consumer.consume(num_messages=100, timeout=0.1):
            if m.error():
                raise self.ck.KafkaException(m.error())
            batch.append((m.partition(), m.offset()))
        return batch

    def commit(self):
        try:
            self.consumer.commit(asynchronous=False)
        except self.ck.KafkaException as e:
            if e.args[0].code() != self.ck.KafkaError._NO_OFFSET:
                print(f"commit failed ({e}); its records will be redelivered", file=sys.stderr)

    def close(self):
        self.consumer.close()


class KafkaPython:
    def __init__(self, bootstrap):
        import kafka
        import kafka.admin

        self.kafka = kafka
        self.admin_module = kafka.admin
        self.bootstrap = bootstrap

    def produce(self, topic, records, compression=None):
        producer = self.kafka.KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, compression_type=compression
        )
        futures = [
            producer.send(
                topic, value=value.encode(), key=key.encode() if key is not None else None, partition=partition
            )
            for partition, key, value in records
        ]
        producer.flush()
        for f in futures:
            f.get(timeout=TIMEOUT)  # raises if any send failed
        producer.close()

    def read(self, topic, partitions, count):
        consumer = self.kafka.KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        consumer.assign([self.kafka.TopicPartition(topic, p) for p in range(partitions)])
        consumer.seek_to_beginning()
        read = {p: [] for p in range(partitions)}
        total = 0
        deadline = time.monotonic() + TIMEOUT
        while total < count:
            if time.monotonic() > deadline:
                fail(f"read {total} of {count} records")
            for messages in consumer.poll(timeout_ms=200).values():
                for m in messages:
                    key = m.key.decode() if m.key is not None else None
                    read[m.partition].append((m.offset, key, m.value.decode()))
                    total += 1
        consumer.close()
        return read

    def member(self, name, group, strategy, listener):
        if strategy == "range":
            from kafka.coordinator.assignors.range import RangePartitionAssignor as assignor
        elif strategy == "cooperative-sticky":
            # KIP-429 in kafka-python since 3.0.
            from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor as assignor
        else:
            fail(f"kafka-python has no {strategy} group protocol")
        return KafkaPythonMember(self.kafka, self.bootstrap, name, group, assignor, listener)

    def admin(self, topic):
        admin = self.admin_module.KafkaAdminClient(bootstrap_servers=self.bootstrap)
        new = self.admin_module.NewTopic(topic, 3, 3, topic_configs={"retention.ms": "123456"})
        created = admin.create_topics([new])
        errors = [t for t in created["topics"] if t["error_code"] != 0] if isinstance(created, dict) else []
        if errors:
            fail(f"CreateTopics: {errors}")

        def describe():
            (described,) = admin.describe_topics([topic])
            return [
                (p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"])
                for p in described["partitions"]
            ]

        def configs():
            resource = self.admin_module.ConfigResource(self.admin_module.ConfigResourceType.TOPIC, topic)
            answer = admin.describe_configs([resource])
            return {name: entry["value"] for name, entry in answer["topic"][topic].items()}

        def listed():
            return set(admin.list_topics())

        def delete():
            admin.delete_topics([topic])

        return describe, configs, listed, delete


class KafkaPythonMember:
    def __init__(self, kafka, bootstrap, name, group, assignor, listener):
        self.consumer = kafka.KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            enable_auto_commit=True,
            auto_commit_interval_ms=200,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=300,
            partition_assignment_strategy=[assignor],
        )
        self.CommitFailedError = kafka.errors.CommitFailedError

        class Listener(kafka.ConsumerRebalanceListener):
            # kafka-python runs listeners on its I/O thread, where a
            # blocking commit is refused; what was consumed since the last
            # batch's commit is auto-committed before the rebalance.
            def on_partitions_revoked(self, revoked):
                listener.revoked([tp.partition for tp in revoked])

            def on_partitions_assigned(self, assigned):
                listener.assigned([tp.partition for tp in assigned])

        self.consumer.subscribe([listener.topic], listener=Listener())

    def poll(self):
        # Not shorter: kafka-python commits before a rebalance within what
        # is left of the poll timeout, and a replicated commit takes a while.
        batches = self.consumer.poll(timeout_ms=500)
        return [(m.partition, m.offset) for messages in batches.values() for m in messages]

    def commit(self):
        try:
            self.consumer.commit()
        except self.CommitFailedError as e:
            print(f"commit failed ({e}); its records will be redelivered", file=sys.stderr)

    def close(self):
        self.consumer.close()  # LeaveGroup


CLIENTS = {"confluent-kafka": Confluent, "kafka-python": KafkaPython}


def check_read(read, expected):
    """`read` (partition -> [(offset, key, value)]) holds exactly `expected`
    (partition -> [(key, value)]), each partition from offset 0 without gaps."""
    for p, want in expected.items():
        got = read[p]
        offsets = [o for o, _, _ in got]
        if offsets != list(range(len(want))):
            fail(f"partition {p}: offsets {offsets[:5]}... not 0.. without gaps ({len(got)} of {len(want)})")
        if [(k, v) for _, k, v in got] != want:
            fail(f"partition {p}: records differ from what was produced")


def case_produce(client, topic, partitions, records):
    client.produce(topic, [(i % partitions, str(i), record_value(i)) for i in range(records)])
    print(f"ok produced={records}")


def case_consume(client, topic, partitions, records):
    expected = {p: [(str(i), record_value(i)) for i in range(records) if i % partitions == p] for p in range(partitions)}
    check_read(client.read(topic, partitions, records), expected)
    print(f"ok consumed={records}")


def case_compression(client, topic, records):
    for k, codec in enumerate(CODECS):
        client.produce(topic, [(k, None, compressed_value(codec, i)) for i in range(records)], compression=codec)
    expected = {k: [(None, compressed_value(codec, i)) for i in range(records)] for k, codec in enumerate(CODECS)}
    check_read(client.read(topic, len(CODECS), records * len(CODECS)), expected)
    print(f"ok codecs={','.join(CODECS)} records={records * len(CODECS)}")


def eventually(what, probe):
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except Exception as e:  # not there yet: metadata still propagating
            last = e
        if time.monotonic() > deadline:
            fail(f"not within {TIMEOUT} s: {what} (last: {last!r})")
        time.sleep(0.2)


def case_admin(client, topic):
    describe, configs, listed, delete = client.admin(topic)
    partitions = eventually(
        "3 partitions, each led, 3 replicas in sync",
        lambda: (lambda ps: ps if len(ps) == 3 and all(l >= 0 and len(r) == 3 and len(i) == 3 for _, l, r, i in ps) else None)(
            describe()
        ),
    )
    if sorted(p for p, _, _, _ in partitions) != [0, 1, 2]:
        fail(f"partitions {partitions}")
    eventually("the topic listed", lambda: topic in listed())
    # Nodes other than the controller learn of a new topic a little later
    # (about 0.5 s) and answer UNKNOWN_TOPIC_OR_PARTITION meanwhile, which
    # kafka-python turns into no configs at all.
    found = eventually(
        "DescribeConfigs shows retention.ms=123456",
        lambda: (lambda c: c if c.get("retention.ms") == "123456" else None)(configs()),
    )
    delete()
    eventually("the topic gone from the listing", lambda: topic not in listed())
    print(f"ok admin partitions={partitions} configs={len(found)}")


class GroupLog:
    """Ownership, logged from the members' rebalance callbacks in one global
    order, and the records each member consumed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []
        self.consumed = set()

    def add(self, event):
        with self.lock:
            self.events.append(event)
            if event[0] == "consumed":
                self.consumed.add((event[2], event[3]))

    def count(self):
        with self.lock:
            return len(self.consumed)

    def owners(self):
        """Replays the log: at every point each partition has at most one
        owner and every record was consumed by its owner. Returns partition
        -> member; fails on a violation."""
        owner = {}
        with self.lock:
            events = list(self.events)
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


class Member(threading.Thread):
    """One group member polling on a thread of its own, committing after each
    batch and when it stops."""

    def __init__(self, client, name, group, strategy, topic, log):
        super().__init__(name=name, daemon=True)
        self.member = name
        self.log = log
        self.topic = topic
        self.stopping = threading.Event()
        self.failure = None
        self.consumer = client.member(name, group, strategy, self)

    def assigned(self, partitions):
        self.log.add(("assign", self.member, sorted(partitions)))

    def revoked(self, partitions):
        self.log.add(("revoke", self.member, sorted(partitions)))

    def run(self):
        try:
            while not self.stopping.is_set():
                batch = self.consumer.poll()
                for partition, offset in batch:
                    self.log.add(("consumed", self.member, partition, offset))
                if batch:
                    self.consumer.commit()
            self.consumer.commit()
            self.consumer.close()
        except Exception as e:
            self.failure = e

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
        if self.is_alive() or self.failure:
            fail(f"{self.member} did not stop cleanly: {self.failure!r}")


def case_group(client, topic, group, partitions, per_phase, strategy):
    log = GroupLog()
    phase = partitions * per_phase

    def produce(n):
        client.produce(topic, [(p, None, "%d-%d-%d" % (n, p, i)) for p in range(partitions) for i in range(per_phase)])

    def wait_until(what, members, done):
        deadline = time.monotonic() + TIMEOUT
        while not done():
            for m in members:
                if m.failure:
                    fail(f"{m.member}: {m.failure!r}")
            if time.monotonic() > deadline:
                fail(f"not within {TIMEOUT} s: {what} ({log.count()} records consumed, owners {log.owners()})")
            time.sleep(0.05)

    def member(name):
        m = Member(client, name, group, strategy, topic, log)
        m.start()
        return m

    # A and B share the partitions.
    produce(0)
    a, b = member("A"), member("B")
    wait_until(
        "A and B share the partitions and consume the first phase",
        [a, b],
        lambda: log.count() == phase and set(log.owners().values()) == {"A", "B"},
    )
    # B leaves; A takes over its partitions.
    b.stop()
    produce(1)
    wait_until(
        "A owns every partition and consumes the second phase",
        [a],
        lambda: log.count() == 2 * phase and len(log.owners()) == partitions and set(log.owners().values()) == {"A"},
    )
    # A leaves; B, restarted, resumes at the committed offsets.
    a.stop()
    with log.lock:
        before_restart = len(log.events)
    produce(2)
    b = member("B")
    wait_until("restarted B consumes the third phase", [b], lambda: log.count() == 3 * phase)
    b.stop()
    log.owners()
    with log.lock:
        resumed = [e for e in log.events[before_restart:] if e[0] == "consumed"]
        total = sum(1 for e in log.events if e[0] == "consumed")
    for _, _, p, offset in resumed:
        if offset < 2 * per_phase:
            fail(f"restarted B re-read {p}@{offset} below the committed {2 * per_phase}")
    print(f"ok consumed={len(log.consumed)} redelivered={total - len(log.consumed)}")


def main(argv):
    client_name, case, bootstrap, topic, args = argv[1], argv[2], argv[3], argv[4], argv[5:]
    client = CLIENTS[client_name](bootstrap)
    if case == "produce":
        case_produce(client, topic, int(args[0]), int(args[1]))
    elif case == "consume":
        case_consume(client, topic, int(args[0]), int(args[1]))
    elif case == "compression":
        case_compression(client, topic, int(args[0]))
    elif case == "admin":
        case_admin(client, topic)
    elif case == "group":
        case_group(client, topic, args[0], int(args[1]), int(args[2]), args[3])
    else:
        fail(f"unknown case {case}")


if __name__ == "__main__":
    main(sys.argv)
