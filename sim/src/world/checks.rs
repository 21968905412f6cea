//! Checkers: per-event ones on each broker, and the end-of-run liveness
//! checks and audit.

use super::*;
use seedlog_core::node::Touched;

/// The indexes in `was` or in `now` (each ascending), ascending, once each.
fn merge_ascending(was: &[usize], now: &[(usize, replicas::ViewCopy)], out: &mut Vec<usize>) {
    let (mut was, mut now) = (
        was.iter().copied().peekable(),
        now.iter().map(|(i, _)| *i).peekable(),
    );
    // Bounded by the two lists' lengths.
    loop {
        let next = match (was.peek(), now.peek()) {
            (None, None) => break,
            (Some(&w), Some(&n)) if w < n => was.next(),
            (Some(&w), Some(&n)) if w == n => {
                was.next();
                now.next()
            }
            (Some(_), None) => was.next(),
            _ => now.next(),
        };
        out.push(next.expect("peeked"));
    }
}

impl World {
    /// The per-event checks of broker `b`, after an event touched it.
    ///
    /// The simulator's own checks (monotonic_high_watermark,
    /// consistent_read) are cheap and run after every such event. The core's
    /// `check_invariants` (checker node_invariants) walks every segment and
    /// index entry, so its cost grows with the log: run after every event,
    /// it made long runs ever slower (a simulated hour ran at ~100x). It runs
    /// when `full` (the event was a fault, a heal or the end: crashes,
    /// restarts and recoveries) and otherwise once every
    /// `NODE_CHECK_EVERY_EVENTS` events touching the broker; `run` also
    /// checks every node before each fault, so a crash never discards state
    /// that was not checked. The trade-off: a broken node invariant is
    /// reported up to that many events late (same checker, same message),
    /// which changes nothing for a passing run, its trace or its hash.
    pub(super) fn check_broker(&mut self, b: BrokerId, full: bool) {
        if !matches!(self.brokers[b].state, BrokerState::Up(_)) {
            return;
        }
        self.node_events_unchecked[b] += 1;
        let node_check = full || self.node_events_unchecked[b] >= NODE_CHECK_EVERY_EVENTS;
        if node_check {
            self.node_events_unchecked[b] = 0;
        }
        let BrokerState::Up(node) = &self.brokers[b].state else {
            return;
        };
        let checked = if node_check {
            catch_unwind(AssertUnwindSafe(|| node.check_invariants()))
        } else {
            Ok(())
        };
        if let Err(panic) = checked {
            let message = panic_message(&panic);
            self.violation(
                "node_invariants",
                format!("broker {b}: check_invariants: {message}"),
            );
            self.stopped = true;
            return;
        }
        // With the node's checks, every partition: a backstop that also
        // proves the walks between missed nothing (see `ViewCopy::touched`).
        self.check_partitions(b, node_check);
        if self.cluster.is_some() {
            // Each broker's node check brings the whole-cluster ISR check
            // along, so it runs every ~NODE_CHECK_EVERY_EVENTS / brokers
            // events: every ~10 in a 100-broker cluster, where it reads
            // every replica of every broker (most of a run's time). Beyond
            // VOTERS_MAX brokers it waits for ISR_CHECK_EVERY_EVENTS_MIN
            // events since the last one, the cadence a 9-broker cluster
            // gets; clusters up to 9 brokers are checked as before. Every
            // fault, the heal and the end still check first.
            let due = self.brokers.len() <= VOTERS_MAX
                || self.events >= self.isr_checked_at_event + ISR_CHECK_EVERY_EVENTS_MIN;
            if node_check && due {
                self.check_isr(false);
            }
        }
    }

    /// Which of broker `b`'s partitions to look at, ascending, read into
    /// `self.views`: every one when `all` (and on a standalone broker
    /// every one of the workload, each must be there; in a cluster those
    /// hosted now and those hosted at the last full walk: a copy moved
    /// away is forgotten), else those the node touched since the last
    /// walk (an event touches a few of the hundreds a large cluster's
    /// broker hosts). Every other one is as the last walk saw it.
    fn partition_walk(&mut self, b: BrokerId, all: bool) -> Vec<usize> {
        let mut walk = std::mem::take(&mut self.walk_buf);
        walk.clear();
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            return walk;
        };
        let mut touched = std::mem::take(&mut self.touched_by_faults[b]);
        let tp_base = &self.tp_base;
        let mut whole_topic = false;
        let listed = node.drain_touched(|t| match t {
            Touched::Partition(topic, p) => {
                touched.extend(tp_index(tp_base, topic, p));
            }
            Touched::Topic(topic) => whole_topic |= tp_base.contains_key(topic),
        });
        touched.sort_unstable();
        touched.dedup();
        if listed && !whole_topic && !all {
            self.views.read_listed(node, &self.tps, &touched);
            walk.extend_from_slice(&touched);
        } else {
            if !listed || whole_topic {
                // Everything counts as touched: nothing to hold it to.
                touched.clear();
                touched.extend(0..self.tps.len());
            }
            self.views.read(node, &self.topics, &touched);
            if self.cluster.is_some() {
                merge_ascending(&self.hosted_seen[b], &self.views.hosted, &mut walk);
            } else {
                walk.extend(0..self.tps.len());
            }
            let seen = &mut self.hosted_seen[b];
            seen.clear();
            seen.extend(self.views.hosted.iter().map(|(i, _)| *i));
        }
        touched.clear();
        self.touched_by_faults[b] = touched;
        walk
    }

    /// The per-event partition checks of broker `b` (see `check_broker`):
    /// monotonic_high_watermark and consistent_read here, the replica
    /// checks in `check_replicas`; `all`: every partition, else those the
    /// node touched.
    pub(super) fn check_partitions(&mut self, b: BrokerId, all: bool) {
        if !matches!(self.brokers[b].state, BrokerState::Up(_)) {
            return;
        }
        let crashed = std::mem::replace(&mut self.brokers[b].crashed_since_observed, false);
        let restarted = std::mem::replace(&mut self.brokers[b].restarted_since_observed, false);
        let cluster = self.cluster.is_some();
        let walk = self.partition_walk(b, all);
        let BrokerState::Up(node) = &self.brokers[b].state else {
            unreachable!("checked above");
        };
        let flush_before_ack = node.config().flush_before_ack;
        let mut problems = Vec::new();
        let mut regressions = 0;
        let mut restart_resets = 0;
        let mut moved = Vec::new();
        let mut log_start_moved = Vec::new();
        let mut hosted = self.views.hosted.iter().peekable();
        for &i in &walk {
            let tp = &self.tps[i];
            let view = hosted.next_if(|(h, _)| *h == i).map(|(_, v)| *v);
            let Some(view) = view else {
                // In a cluster a broker hosts only its replicas, and none
                // before the topic exists; loss shows at the end instead.
                if !cluster {
                    problems.push((
                        "consistent_read",
                        format!("broker {b} lost partition {}-{}", tp.0, tp.1),
                    ));
                }
                // A copy a reassignment moved away is gone; one that comes
                // back later starts from an empty log, not from what this
                // one had reached. (A broker that never hosted the
                // partition is at 0 and None already.)
                self.offsets_seen[b][i] = OffsetsSeen::default();
                continue;
            };
            let (log_start, hw, log_end) = (
                view.log_start_offset,
                view.high_watermark,
                view.log_end_offset,
            );
            let offsets_seen = &mut self.offsets_seen[b][i];
            let seen = offsets_seen.hw;
            assert!(
                view.touched || (hw == seen && offsets_seen.log_start == Some(log_start)),
                "{}-{} on broker {b}: high watermark {seen} -> {hw}, log start {:?} -> {log_start} without the node listing it as touched",
                tp.0,
                tp.1,
                offsets_seen.log_start
            );
            if hw < seen {
                if crashed && !flush_before_ack {
                    regressions += 1;
                } else if restarted && cluster {
                    // A replica learns its high watermark from the leader
                    // again after a restart (Kafka checkpoints it only now
                    // and then); what consumers see is checked apart.
                    restart_resets += 1;
                } else {
                    problems.push((
                        "monotonic_high_watermark",
                        format!(
                            "broker {b} {}-{}: high watermark went back from {seen} to {hw}{}",
                            tp.0,
                            tp.1,
                            if crashed { " across a crash" } else { "" }
                        ),
                    ));
                }
            }
            if hw != seen {
                moved.push((i, hw));
            }
            if offsets_seen.log_start != Some(log_start) {
                offsets_seen.log_start = Some(log_start);
                log_start_moved.push(i);
            }
            offsets_seen.hw = hw;
            // A follower may lag behind what consumers read from the
            // leader; in a cluster, reads are checked against the healed
            // log at the end (consistent_read there) and replicas against
            // each other (log_matching).
            if let Some(max) = self.read_offset_max[i].filter(|_| !cluster) {
                if log_end <= max {
                    problems.push((
                        "consistent_read",
                        format!(
                            "{}-{}: a consumer read offset {max}, but broker {b}'s log now ends at {log_end}",
                            tp.0, tp.1
                        ),
                    ));
                }
            }
        }
        debug_assert!(hosted.next().is_none(), "every hosted partition walked");
        self.walk_buf = walk;
        self.stats.hw_regressions_allowed += regressions;
        if let Some(c) = self.cluster.as_mut() {
            c.stats.hw_restart_resets += restart_resets;
        }
        if !moved.is_empty() {
            // Lent out while the events borrow their partitions (`emit`
            // needs the world): no name cloned per move.
            let tps = std::mem::take(&mut self.tps);
            for &(i, hw) in &moved {
                self.emit(Ev::Hw {
                    broker: b,
                    tp: &tps[i],
                    hw,
                });
            }
            self.tps = tps;
        }
        for (checker, message) in problems {
            self.violation(checker, message);
        }
        if self.scenario.disk.retention_bytes.is_some() {
            for i in log_start_moved {
                self.forget_below_retention(i);
            }
        }
        if cluster {
            self.check_applied_metadata(b);
            // The views read above are still the node's: nothing since
            // touched it.
            self.check_replicas(b);
        }
    }

    /// Retention moved a log start of partition `i`: what every replica
    /// deleted (below the lowest log start any broker hosting it reported)
    /// no one can read any more, so the checkers' per-offset state forgets
    /// it and memory stays bounded over long runs. (Log starts only go up:
    /// segment deletion is durable at once, and a replica that restarts
    /// empty fetches from its leader's log start.)
    fn forget_below_retention(&mut self, i: usize) {
        let Some(floor) = self
            .offsets_seen
            .iter()
            .filter_map(|b| b[i].log_start)
            .min()
        else {
            return;
        };
        let tp = self.tps[i].clone();
        if floor <= self.history.judged_from(&tp) {
            return;
        }
        let keep = self.read_values[i].split_off(&floor);
        self.read_values[i] = keep;
        // With idempotence `nonmonotonic_send` is judged in send order at
        // the end, so the sends stay (the reads go).
        let keep_sends = self.scenario.workload.idempotent;
        self.history.forget_below(&tp, floor, keep_sends);
        if let Some(c) = self.cluster.as_mut() {
            c.replicas.forget_below(i, floor);
        }
    }

    /// monotonic_high_watermark as consumers see it (cluster scenarios):
    /// a successful fetch never reports a partition's high watermark lower
    /// than an earlier one did, whichever broker answered. `epoch` is the
    /// leader epoch the consumer fetched in.
    pub(super) fn check_consumer_hw(&mut self, broker: BrokerId, epoch: i32, tp: &Tp, hw: i64) {
        let i = self.tp_index(tp);
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let (seen, seen_broker, seen_epoch) = cluster.consumer_hw[i];
        if hw < seen {
            let message = format!(
                "{}-{}: a consumer fetched a high watermark of {hw} from broker {broker} (leader epoch {epoch}), lower than the {seen} it fetched from broker {seen_broker} (epoch {seen_epoch})",
                tp.0, tp.1
            );
            self.violation("monotonic_high_watermark", message);
        } else {
            cluster.consumer_hw[i] = (hw, broker, epoch);
        }
    }

    /// The core's full `check_invariants` on every running broker, before a
    /// fault (or the end) changes what can be checked. Emits nothing unless
    /// an invariant is broken.
    pub(super) fn check_nodes_fully(&mut self) {
        self.check_isr(true);
        for b in 0..self.brokers.len() {
            let BrokerState::Up(node) = &self.brokers[b].state else {
                continue;
            };
            self.node_events_unchecked[b] = 0;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| node.check_invariants())) {
                let message = panic_message(&panic);
                self.violation(
                    "node_invariants",
                    format!("broker {b}: check_invariants: {message}"),
                );
                self.stopped = true;
                return;
            }
        }
    }

    // --- end of run -------------------------------------------------------------------

    pub(super) fn end_of_run(&mut self) {
        // Liveness: every send resolved, every consumer caught up.
        let pending: Vec<SendId> = self
            .history
            .sends()
            .filter(|s| s.outcome == SendOutcome::Pending)
            .map(|s| s.id)
            .collect();
        if let Some(first) = pending.first() {
            let message = format!(
                "{} sends unresolved {} ms after healing (first: send {first})",
                pending.len(),
                self.scenario.phases.liveness_ms
            );
            self.violation("liveness_send", message);
        }
        if self.stats.sends > 0
            && self.stats.acked_after_heal == 0
            && self.swarm.acks_weights.iter().any(|(a, _)| *a != 0)
        {
            self.violation(
                "liveness_send",
                "no send was acknowledged after the faults healed".to_string(),
            );
        }
        if self.cluster.is_some() {
            self.cluster_liveness();
        }
        self.groups_end_of_run();
        let audit = self.audit();
        let mut behind = Vec::new();
        for (c, client) in self.clients.iter().enumerate() {
            if let ClientKind::Consumer(consumer) = &client.kind {
                for (i, position) in consumer.positions.iter() {
                    let tp = &self.tps[i];
                    let end = audit.get(tp).map_or(0, |(hw, _, _)| *hw);
                    if position < end {
                        behind.push(format!(
                            "consumer {c} at {}-{}:{position} < hw {end}",
                            tp.0, tp.1
                        ));
                    }
                }
            }
        }
        if !behind.is_empty() {
            self.violation("liveness_consume", behind.join("; "));
        }
        let log_start: BTreeMap<Tp, i64> = audit
            .iter()
            .map(|(tp, (_, start, _))| (tp.clone(), *start))
            .collect();
        let log: BTreeMap<Tp, PartitionRecords> = audit
            .into_iter()
            .map(|(tp, (_, _, records))| (tp, records))
            .collect();
        let rules = self.history_rules();
        let found = checker::check_history(&self.history, &log, &log_start, rules);
        self.stats.duplicates = found.duplicates;
        if let Some(c) = self.cluster.as_mut() {
            c.stats.acks1_lost = found.acks1_lost;
        }
        if self.scenario.workload.idempotent {
            // duplicate (INVARIANTS.md): none with idempotence, but for
            // sends re-sequenced under a new producer id.
            let unexplained: Vec<String> = found
                .duplicate_values
                .iter()
                .filter(|v| {
                    let owner = self.history.owner_of(v).expect("an owned value");
                    !self.history.send(owner).resequenced
                })
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            if let Some(first) = unexplained.first() {
                let message = format!(
                    "{} values appear at two offsets with idempotence on (first: {first:?})",
                    unexplained.len()
                );
                self.violation("duplicate", message);
            }
        }
        for (checker, message) in found.violations {
            self.violation(checker, message);
        }
        let acked = self.stats.acked;
        if acked < self.scenario.expect.acked_sends_min {
            self.violation(
                "expect_acked_sends",
                format!(
                    "{acked} sends acknowledged, the scenario expects at least {}",
                    self.scenario.expect.acked_sends_min
                ),
            );
        }
    }

    /// Every reassignment the controller accepted completed once the faults
    /// healed: each running broker's committed metadata shows the last
    /// accepted target of the partition as its replicas (any order), with
    /// no reassignment in progress.
    fn reassignments_completed(&mut self) {
        let cluster = self.cluster.as_ref().expect("cluster scenario");
        let mut last: BTreeMap<usize, &Vec<i32>> = BTreeMap::new();
        for (tp, target) in &cluster.reassignments {
            last.insert(*tp, target);
        }
        let mut unfinished = Vec::new();
        for (tp, target) in last {
            let (topic, partition) = &self.tps[tp];
            let want: BTreeSet<i32> = target.iter().copied().collect();
            for (b, broker) in self.brokers.iter().enumerate() {
                let BrokerState::Up(node) = &broker.state else {
                    continue;
                };
                let Some((replicas, reassigning)) = node.registered_replicas(topic, *partition)
                else {
                    continue;
                };
                let have: BTreeSet<i32> = replicas.iter().copied().collect();
                if reassigning || have != want {
                    unfinished.push(format!(
                        "{topic}-{partition}: broker {b} sees replicas {replicas:?} (reassigning {reassigning}), target {target:?}"
                    ));
                }
            }
        }
        if !unfinished.is_empty() {
            self.violation("liveness_reassignment", unfinished.join("; "));
        }
    }

    /// Cluster liveness after the heal: every partition acknowledged an
    /// acks=all write within `recovery_ms_max` (if producers use acks=all),
    /// and every replica holds everything its leader committed.
    fn cluster_liveness(&mut self) {
        let cluster = self.cluster.as_ref().expect("cluster scenario");
        let bound = cluster.config.recovery_ms_max;
        let heal_ms = (self.heal_at - self.epoch).as_millis() as u64;
        let acks_all = self.swarm.acks_weights.iter().any(|(a, _)| *a == -1);
        let mut late = Vec::new();
        for (i, times) in cluster.acks_all_ms.iter().enumerate() {
            let first = times.iter().find(|t| **t >= heal_ms);
            if acks_all && first.is_none_or(|t| t - heal_ms > bound) {
                late.push(format!(
                    "{}-{} ({})",
                    self.tps[i].0,
                    self.tps[i].1,
                    first.map_or("never".to_string(), |t| format!("after {} ms", t - heal_ms))
                ));
            }
        }
        if !late.is_empty() {
            let message = format!(
                "no acks=all write acknowledged within {bound} ms of the heal on {}",
                late.join(", ")
            );
            self.violation("liveness_partition", message);
        }
        let leaders = self.final_leaders();
        let mut behind = Vec::new();
        for (i, (topic, partition)) in self.tps.iter().enumerate() {
            let Some((leader, _)) = leaders[i] else {
                continue;
            };
            let BrokerState::Up(node) = &self.brokers[leader].state else {
                continue;
            };
            let Some((_, leader_hw, _)) = node.partition_offsets(topic, *partition) else {
                continue;
            };
            for (b, broker) in self.brokers.iter().enumerate() {
                let BrokerState::Up(node) = &broker.state else {
                    continue;
                };
                if let Some((_, _, log_end)) = node.partition_offsets(topic, *partition) {
                    if log_end < leader_hw {
                        behind.push(format!(
                            "{topic}-{partition}: broker {b} ends at {log_end} < leader {leader}'s high watermark {leader_hw}"
                        ));
                    }
                }
            }
        }
        if !behind.is_empty() {
            self.violation("liveness_replication", behind.join("; "));
        }
        self.reassignments_completed();
    }

    /// Per partition: the leader (and epoch) the running brokers' own
    /// Metadata answers name with the highest leader epoch. Asked directly
    /// at the end of the run only: a direct request drops the node's other
    /// outputs.
    pub(super) fn final_leaders(&mut self) -> Vec<Option<(BrokerId, i32)>> {
        let mut best: Vec<Option<(BrokerId, i32)>> = vec![None; self.tps.len()];
        if self.cluster.is_none() {
            return vec![Some((0, 0)); self.tps.len()];
        }
        let conn = u64::MAX - 2;
        let brokers = self.brokers.len();
        for b in 0..brokers {
            if !matches!(self.brokers[b].state, BrokerState::Up(_)) {
                continue;
            }
            let header = RequestHeader::default()
                .with_request_api_key(ApiKey::Metadata as i16)
                .with_request_api_version(12)
                .with_correlation_id(0);
            let body = self.metadata_request(true);
            let responses = self.direct_request(b, conn, header, body);
            self.close_direct(b, conn);
            let Some(ResponseKind::Metadata(r)) = responses.into_iter().next() else {
                continue;
            };
            for topic in &r.topics {
                let Some(name) = &topic.name else { continue };
                for p in &topic.partitions {
                    let Some(i) = self.find_tp(name.0.as_str(), p.partition_index) else {
                        continue;
                    };
                    let id = p.leader_id.0;
                    if id < 1 || id as usize > brokers || p.error_code != 0 {
                        continue;
                    }
                    if best[i].is_none_or(|(_, e)| p.leader_epoch > e) {
                        best[i] = Some((id as usize - 1, p.leader_epoch));
                    }
                }
            }
        }
        best
    }

    fn close_direct(&mut self, b: BrokerId, conn: ConnId) {
        let now = self.node_now(b);
        if let BrokerState::Up(node) = &mut self.brokers[b].state {
            node.handle(now, Input::ConnectionClosed { connection: conn });
        }
    }

    /// The final read: every partition, log start to high watermark, from
    /// its leader through the broker's Fetch path. (tp -> (hw, log start,
    /// [(offset, value)]))
    pub(super) fn audit(&mut self) -> BTreeMap<Tp, (i64, i64, PartitionRecords)> {
        let mut out = BTreeMap::new();
        let audit_conn = u64::MAX - 1;
        let tps = self.tps.clone();
        let leaders = self.final_leaders();
        let mut asked = BTreeSet::new();
        for (i, tp) in tps.into_iter().enumerate() {
            let Some((leader, epoch)) = leaders[i] else {
                let message = format!(
                    "{}-{}: no broker leads it at the end of the run (its history is not judged)",
                    tp.0, tp.1
                );
                self.violation("liveness_partition", message);
                continue;
            };
            asked.insert(leader);
            let mut records = Vec::new();
            let mut position = 0;
            let mut hw = 0;
            let mut log_start = 0;
            let mut readable = true;
            // Bounded: each round reads at least one record or stops.
            for round in 0..1_000_000 {
                let request = FetchRequest::default()
                    .with_max_wait_ms(0)
                    .with_min_bytes(1)
                    .with_max_bytes(1 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(tp.0.clone())))
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(tp.1)
                            .with_fetch_offset(position)
                            .with_current_leader_epoch(if self.cluster.is_some() {
                                epoch
                            } else {
                                -1
                            })
                            .with_partition_max_bytes(1 << 20)])]);
                let header = RequestHeader::default()
                    .with_request_api_key(ApiKey::Fetch as i16)
                    .with_request_api_version(FETCH_API_VERSION)
                    .with_correlation_id(round);
                let responses =
                    self.direct_request(leader, audit_conn, header, RequestKind::Fetch(request));
                let Some(ResponseKind::Fetch(r)) = responses.into_iter().next() else {
                    panic!("the audit fetch got no answer");
                };
                let part = &r.responses[0].partitions[0];
                if part.error_code == ResponseError::OffsetOutOfRange.code() && position == 0 {
                    position = part.log_start_offset.max(0);
                    log_start = position;
                    continue;
                }
                if part.error_code != 0 {
                    let message = format!(
                        "{}-{}: the final read from broker {leader} at offset {position} failed with error {}",
                        tp.0, tp.1, part.error_code
                    );
                    self.violation("liveness_partition", message);
                    readable = false;
                    break;
                }
                hw = part.high_watermark;
                let before = records.len();
                if let Some(bytes) = &part.records {
                    for (start, header) in BatchIter::new(bytes) {
                        let batch = &bytes[start..start + header.total_size()];
                        for (i, (_, value)) in
                            decode_records_for_test(batch).into_iter().enumerate()
                        {
                            let offset = header.base_offset() + i as i64;
                            if offset >= position && offset < hw {
                                records.push((offset, value.unwrap_or_default()));
                                position = offset + 1;
                            }
                        }
                    }
                }
                if records.len() == before || position >= hw {
                    break;
                }
            }
            if readable {
                out.insert(tp, (hw, log_start, records));
            }
        }
        for b in asked {
            self.close_direct(b, audit_conn);
        }
        out
    }
}
