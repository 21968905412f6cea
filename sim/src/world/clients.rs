//! Clients: producers and consumers, their connections, retries and
//! deadlines.

use super::*;

#[derive(Debug, Clone, Copy)]
pub(super) enum ClientConn {
    Down { reconnect_at: Instant },
    Connecting(ConnId),
    Open(ConnId),
}

pub(super) struct Producer {
    pub(super) next_send_at: Instant,
    /// Sends waiting to go out (new or to retry), oldest first.
    pub(super) queue: VecDeque<SendId>,
    /// correlation id -> (send, deadline)
    pub(super) in_flight: BTreeMap<i32, (SendId, Instant)>,
    pub(super) retry_at: Instant,
}

pub(super) struct Consumer {
    pub(super) positions: BTreeMap<Tp, i64>,
    pub(super) next_fetch_at: Instant,
    pub(super) in_flight: Option<(i32, Instant)>,
}

pub(super) enum ClientKind {
    Producer(Producer),
    Consumer(Consumer),
}

pub(super) struct Client {
    pub(super) az: usize,
    pub(super) conn: ClientConn,
    pub(super) next_correlation_id: i32,
    pub(super) wake_at: Option<Instant>,
    pub(super) kind: ClientKind,
}

impl World {
    pub(super) fn client_lost_connection(&mut self, client: ClientId) {
        let backoff = uniform(&mut self.rng_client, self.swarm.reconnect_backoff_ms);
        let c = &mut self.clients[client];
        c.conn = ClientConn::Down {
            reconnect_at: self.now + Duration::from_millis(backoff),
        };
        match &mut c.kind {
            ClientKind::Producer(p) => {
                // Whatever was in flight may or may not have been appended;
                // it goes back to the front of the queue, in order.
                let lost: Vec<SendId> = std::mem::take(&mut p.in_flight)
                    .into_values()
                    .map(|(id, _)| id)
                    .collect();
                for id in lost.iter().rev() {
                    p.queue.push_front(*id);
                }
                for id in lost {
                    self.history.send_mut(id).maybe_appended = true;
                }
            }
            ClientKind::Consumer(consumer) => consumer.in_flight = None,
        }
        self.rearm_client(client);
    }

    pub(super) fn rearm_client(&mut self, client: ClientId) {
        let c = &self.clients[client];
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let ClientConn::Down { reconnect_at } = c.conn {
            consider(reconnect_at);
        }
        let open = matches!(c.conn, ClientConn::Open(_));
        let delivery_timeout = Duration::from_millis(self.scenario.workload.delivery_timeout_ms);
        match &c.kind {
            ClientKind::Producer(p) => {
                if p.next_send_at < self.produce_stop_at {
                    consider(p.next_send_at);
                }
                if let Some((_, deadline)) =
                    p.in_flight.values().map(|v| (v.0, v.1)).min_by_key(|v| v.1)
                {
                    consider(deadline);
                }
                if let Some(first) = p.queue.front() {
                    let invoke =
                        self.epoch + Duration::from_millis(self.history.send(*first).invoke_ms);
                    consider(invoke + delivery_timeout);
                    if open && (p.in_flight.len() as u32) < self.swarm.in_flight_max {
                        consider(p.retry_at.max(self.now));
                    }
                }
            }
            ClientKind::Consumer(consumer) => {
                if let Some((_, deadline)) = consumer.in_flight {
                    consider(deadline);
                } else if open {
                    consider(consumer.next_fetch_at.max(self.now));
                }
            }
        }
        let Some(at) = next else { return };
        let at = at.max(self.now);
        if self.clients[client]
            .wake_at
            .is_some_and(|w| w <= at && w >= self.now)
        {
            return;
        }
        self.clients[client].wake_at = Some(at);
        self.push(at, EventKind::ClientWake { client });
    }

    pub(super) fn client_tick(&mut self, client: ClientId) {
        if let ClientConn::Down { reconnect_at } = self.clients[client].conn {
            if reconnect_at <= self.now {
                self.connect(client);
            }
        }
        if matches!(self.clients[client].kind, ClientKind::Producer(_)) {
            self.producer_tick(client);
        } else {
            self.consumer_tick(client);
        }
        self.rearm_client(client);
    }

    pub(super) fn next_correlation_id(&mut self, client: ClientId) -> i32 {
        let c = &mut self.clients[client];
        let id = c.next_correlation_id;
        c.next_correlation_id = c.next_correlation_id.wrapping_add(1).max(1);
        id
    }

    pub(super) fn producer_tick(&mut self, client: ClientId) {
        let now = self.now;
        let ms = self.ms();
        // Time out a request that went unanswered: close the connection, as
        // the Java client does, so the broker and client start afresh.
        let timed_out = match &self.clients[client].kind {
            ClientKind::Producer(p) => p.in_flight.values().any(|(_, d)| *d <= now),
            ClientKind::Consumer(_) => unreachable!(),
        };
        if timed_out {
            self.client_close(client, "request timeout");
        }
        // New sends.
        loop {
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            if p.next_send_at > now || p.next_send_at >= self.produce_stop_at {
                break;
            }
            if p.queue.len() >= PRODUCER_QUEUE_MAX {
                // buffer.memory is full: the application's send blocks, so
                // the send is not invoked yet (not a failure).
                p.next_send_at =
                    now + Duration::from_millis(self.swarm.produce_interval_ms[1].max(1));
                break;
            }
            let id = self.new_send(client);
            let gap = uniform(&mut self.rng_client, self.swarm.produce_interval_ms).max(1);
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            p.queue.push_back(id);
            p.next_send_at = p.next_send_at + Duration::from_millis(gap);
        }
        // Give up on sends past the delivery timeout that are not in flight.
        let delivery_timeout_ms = self.scenario.workload.delivery_timeout_ms;
        loop {
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            let Some(first) = p.queue.front().copied() else {
                break;
            };
            let op = self.history.send(first);
            if op.invoke_ms + delivery_timeout_ms > ms {
                break;
            }
            p.queue.pop_front();
            let outcome = if op.maybe_appended {
                SendOutcome::Indeterminate
            } else {
                SendOutcome::Failed {
                    error_code: ResponseError::RequestTimedOut.code(),
                }
            };
            self.complete_send(first, outcome);
        }
        // Send what the window allows.
        let ClientConn::Open(conn) = self.clients[client].conn else {
            return;
        };
        loop {
            let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                unreachable!()
            };
            if p.retry_at > now || p.in_flight.len() as u32 >= self.swarm.in_flight_max {
                break;
            }
            let Some(id) = p.queue.pop_front() else { break };
            let corr = self.next_correlation_id(client);
            let op = self.history.send_mut(id);
            op.attempts += 1;
            let acks = op.acks;
            let records: Vec<TestRecord<'_>> = op
                .values
                .iter()
                .map(|v| (None, Some(v.as_slice())))
                .collect();
            let batch = build_batch(&records, (now.as_nanos() / 1_000_000) as i64);
            let request = ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(op.topic.clone())))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(op.partition)
                        .with_records(Some(Bytes::from(batch)))])]);
            let header = RequestHeader::default()
                .with_request_api_key(ApiKey::Produce as i16)
                .with_request_api_version(PRODUCE_API_VERSION)
                .with_correlation_id(corr)
                .with_client_id(Some(StrBytes::from_static_str("seedlog-sim")));
            if acks == 0 {
                // Fire and forget: done once on the wire.
                self.history.send_mut(id).maybe_appended = true;
                self.complete_send(id, SendOutcome::Unacked);
            } else {
                let deadline = now + Duration::from_millis(self.swarm.request_timeout_ms);
                let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                    unreachable!()
                };
                p.in_flight.insert(corr, (id, deadline));
            }
            self.send_to_node(conn, header, RequestKind::Produce(request));
        }
    }

    pub(super) fn new_send(&mut self, client: ClientId) -> SendId {
        let tp = self.tps[self.rng_client.gen_range(0..self.tps.len())].clone();
        let total: u32 = self.swarm.acks_weights.iter().map(|(_, w)| *w).sum();
        let mut pick = self.rng_client.gen_range(0..total);
        let mut acks = self.swarm.acks_weights[0].0;
        for (a, w) in &self.swarm.acks_weights {
            if pick < *w {
                acks = *a;
                break;
            }
            pick -= *w;
        }
        let count = self
            .rng_client
            .gen_range(1..=self.swarm.records_per_send_max);
        let id = self.history.sends.len() as SendId;
        let values: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("c{client}-s{id}-r{i}").into_bytes())
            .collect();
        for v in &values {
            let previous = self.history.value_owner.insert(v.clone(), id);
            assert!(previous.is_none(), "values are unique");
        }
        self.emit(Ev::Invoke {
            send: id,
            producer: client,
            tp: &tp,
            acks,
            records: values.len(),
        });
        self.history.sends.push(SendOp {
            id,
            producer: client as u32,
            topic: tp.0,
            partition: tp.1,
            acks,
            values,
            invoke_ms: self.ms(),
            complete_ms: None,
            outcome: SendOutcome::Pending,
            maybe_appended: false,
            attempts: 0,
        });
        self.stats.sends += 1;
        id
    }

    pub(super) fn complete_send(&mut self, id: SendId, outcome: SendOutcome) {
        let ms = self.ms();
        self.history.complete(id, outcome, ms);
        match outcome {
            SendOutcome::Acked { .. } => {
                self.stats.acked += 1;
                let producer = self.history.send(id).producer;
                self.ack_times_ms.entry(producer).or_default().push(ms);
                if self.healed {
                    self.stats.acked_after_heal += 1;
                }
            }
            SendOutcome::Unacked => self.stats.unacked_acks0 += 1,
            SendOutcome::Failed { .. } => self.stats.failed += 1,
            SendOutcome::Indeterminate => self.stats.indeterminate += 1,
            SendOutcome::Pending => unreachable!("complete with a real outcome"),
        }
        self.emit(Ev::Complete { send: id, outcome });
    }

    pub(super) fn client_response(
        &mut self,
        client: ClientId,
        conn: ConnId,
        correlation_id: i32,
        body: ResponseKind,
    ) {
        if !matches!(self.clients[client].conn, ClientConn::Open(c) if c == conn) {
            return;
        }
        match body {
            ResponseKind::Produce(r) => {
                let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                    panic!("a produce response reached a consumer");
                };
                let Some((id, _)) = p.in_flight.remove(&correlation_id) else {
                    panic!("produce response to unknown correlation id {correlation_id}");
                };
                let part = r
                    .responses
                    .first()
                    .and_then(|t| t.partition_responses.first())
                    .expect("one partition per produce");
                let code = part.error_code;
                if code == 0 {
                    self.complete_send(
                        id,
                        SendOutcome::Acked {
                            offset: part.base_offset,
                        },
                    );
                } else if ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable()) {
                    // A storage error may come after the append (a failed
                    // flush): the records can still become visible.
                    self.history.send_mut(id).maybe_appended = true;
                    let backoff = uniform(&mut self.rng_client, [50, 200]);
                    let ClientKind::Producer(p) = &mut self.clients[client].kind else {
                        unreachable!()
                    };
                    // Retries go first, in send order.
                    let position = p
                        .queue
                        .iter()
                        .position(|q| *q > id)
                        .unwrap_or(p.queue.len());
                    p.queue.insert(position, id);
                    p.retry_at = self.now + Duration::from_millis(backoff);
                } else {
                    self.complete_send(id, SendOutcome::Failed { error_code: code });
                }
            }
            ResponseKind::Fetch(r) => self.consumer_fetched(client, correlation_id, r),
            other => panic!("unexpected response {other:?}"),
        }
        self.client_tick(client);
    }

    pub(super) fn consumer_tick(&mut self, client: ClientId) {
        let now = self.now;
        let ClientKind::Consumer(consumer) = &self.clients[client].kind else {
            unreachable!()
        };
        if consumer.in_flight.is_some_and(|(_, d)| d <= now) {
            self.client_close(client, "fetch timeout");
            return;
        }
        let ClientConn::Open(conn) = self.clients[client].conn else {
            return;
        };
        let ClientKind::Consumer(consumer) = &self.clients[client].kind else {
            unreachable!()
        };
        if consumer.in_flight.is_some()
            || consumer.next_fetch_at > now
            || consumer.positions.is_empty()
        {
            return;
        }
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in &consumer.positions {
            topics.entry(topic).or_default().push(
                FetchPartition::default()
                    .with_partition(*partition)
                    .with_fetch_offset(*offset)
                    .with_current_leader_epoch(-1)
                    .with_partition_max_bytes(64 * 1024),
            );
        }
        let request = FetchRequest::default()
            .with_max_wait_ms(self.swarm.fetch_max_wait_ms as i32)
            .with_min_bytes(1)
            .with_max_bytes(256 * 1024)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let corr = self.next_correlation_id(client);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(FETCH_API_VERSION)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("seedlog-sim")));
        let deadline = now
            + Duration::from_millis(self.swarm.fetch_max_wait_ms + self.swarm.request_timeout_ms);
        let ClientKind::Consumer(consumer) = &mut self.clients[client].kind else {
            unreachable!()
        };
        consumer.in_flight = Some((corr, deadline));
        self.send_to_node(conn, header, RequestKind::Fetch(request));
    }

    pub(super) fn consumer_fetched(
        &mut self,
        client: ClientId,
        correlation_id: i32,
        r: FetchResponse,
    ) {
        let ms = self.ms();
        let ClientKind::Consumer(consumer) = &mut self.clients[client].kind else {
            panic!("a fetch response reached a producer");
        };
        assert_eq!(
            consumer.in_flight.map(|(c, _)| c),
            Some(correlation_id),
            "fetch responses come in order, one in flight"
        );
        consumer.in_flight = None;
        let mut reads: Vec<(Tp, i64, Vec<u8>)> = Vec::new();
        let mut polls = Vec::new();
        let mut seeks = Vec::new();
        let mut any_error = false;
        for topic in &r.responses {
            for part in &topic.partitions {
                let tp: Tp = (topic.topic.0.to_string(), part.partition_index);
                let Some(position) = consumer.positions.get_mut(&tp) else {
                    continue;
                };
                let from = *position;
                let mut count = 0;
                if part.error_code == ResponseError::OffsetOutOfRange.code() {
                    // auto.offset.reset=earliest: start over; a seek, so
                    // going back is not a nonmonotonic poll.
                    *position = 0;
                    seeks.push(tp.clone());
                    any_error = true;
                } else if part.error_code != 0 {
                    any_error = true;
                } else if let Some(records) = &part.records {
                    for (start, header) in BatchIter::new(records) {
                        let batch = &records[start..start + header.total_size()];
                        for (i, (_, value)) in
                            decode_records_for_test(batch).into_iter().enumerate()
                        {
                            let offset = header.base_offset() + i as i64;
                            if offset < *position {
                                continue; // the batch began before our position
                            }
                            assert!(
                                offset < part.high_watermark,
                                "fetch returns records below the high watermark only"
                            );
                            reads.push((tp.clone(), offset, value.unwrap_or_default()));
                            *position = offset + 1;
                            count += 1;
                        }
                    }
                }
                polls.push((tp, from, count, part.high_watermark, part.error_code));
            }
        }
        consumer.next_fetch_at = if any_error {
            self.now + Duration::from_millis(100)
        } else {
            self.now
        };
        for (tp, from, records, hw, error) in &polls {
            self.emit(Ev::Poll {
                consumer: client,
                tp,
                from: *from,
                records: *records,
                hw: *hw,
                error: *error,
            });
        }
        for tp in seeks {
            self.emit(Ev::Seek {
                consumer: client,
                tp: &tp,
                offset: 0,
            });
            self.history.consumer_events.push(ConsumerEvent::Seek {
                consumer: client as u32,
                tp,
                offset: 0,
                at_ms: ms,
            });
        }
        for (tp, offset, value) in reads {
            self.stats.records_read += 1;
            // consistent_read, per event: an offset reads the same value for
            // everyone, forever.
            let i = self.tp_index(&tp);
            match self.read_values[i].get(&offset) {
                Some(first) if *first != value => {
                    let message = format!(
                        "{}-{} offset {offset}: read as {:?}, earlier as {:?}",
                        tp.0,
                        tp.1,
                        String::from_utf8_lossy(&value),
                        String::from_utf8_lossy(first)
                    );
                    self.violation("consistent_read", message);
                }
                Some(_) => {}
                None => {
                    self.read_values[i].insert(offset, value.clone());
                }
            }
            let max = self.read_offset_max[i].get_or_insert(offset);
            *max = (*max).max(offset);
            self.history.consumer_events.push(ConsumerEvent::Read {
                consumer: client as u32,
                tp,
                offset,
                value,
                at_ms: ms,
            });
        }
    }
}
