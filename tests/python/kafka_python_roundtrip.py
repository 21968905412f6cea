"""kafka-python against a seedlog broker: an idempotent producer (the
client's default) writes N records over several partitions with acks=all;
a consumer with manual assignment reads them back in order.

Usage: kafka_python_roundtrip.py BOOTSTRAP TOPIC PARTITIONS RECORDS
Prints one line "ok <records>" on success; exits non-zero otherwise.
"""
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

bootstrap, topic, partitions, records = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
admin.close()

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
futures = [producer.send(topic, value=b"py-%06d" % i, partition=i % partitions) for i in range(records)]
producer.flush()
for f in futures:
    f.get(timeout=30)  # raises if any send failed
producer.close()

consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
assignment = [TopicPartition(topic, p) for p in range(partitions)]
consumer.assign(assignment)
consumer.seek_to_beginning()
seen = {p: [] for p in range(partitions)}
total = 0
for message in consumer:
    expected_offset = len(seen[message.partition])
    if message.offset != expected_offset:
        sys.exit(f"partition {message.partition}: offset {message.offset}, expected {expected_offset}")
    seen[message.partition].append(message.value)
    total += 1
    if total == records:
        break
consumer.close()

for p in range(partitions):
    expected = [b"py-%06d" % i for i in range(records) if i % partitions == p]
    if seen[p] != expected:
        sys.exit(f"partition {p}: read {len(seen[p])} records, expected {len(expected)} in order")
print(f"ok {total}")
