//! The event queue's events and the trace's event lines.

use super::*;

#[derive(Debug)]
pub(super) enum EventKind {
    Connected {
        conn: ConnId,
    },
    ConnectFailed {
        client: ClientId,
        conn: ConnId,
    },
    /// The bodies are boxed: a request or response is 250-270 bytes, and
    /// every event is moved into and out of the queue's slab several times
    /// (those moves were ~3% of a cluster run's instructions).
    ToNode {
        conn: ConnId,
        header: RequestHeader,
        body: Box<RequestKind>,
    },
    /// A response on its way back to whoever opened `conn`: a client, or
    /// the peer broker that asked.
    ToOrigin {
        conn: ConnId,
        correlation_id: i32,
        body: Box<ResponseKind>,
    },
    /// Broker `broker` (in life `generation`) notices that its connections
    /// to `peer` died (break number `incident`).
    PeerDown {
        broker: BrokerId,
        generation: u64,
        peer: BrokerId,
        incident: u64,
    },
    /// A gracefully stopping broker gave its flushes this long; now it
    /// exits whatever is left.
    StopDeadline {
        broker: BrokerId,
        generation: u64,
    },
    /// The broker learns that a connection is gone.
    NodeSawClose {
        broker: BrokerId,
        generation: u64,
        conn: ConnId,
    },
    /// The client learns that its connection is gone (RST, refused).
    ClientSawClose {
        client: ClientId,
        conn: ConnId,
    },
    ClientWake {
        client: ClientId,
    },
    NodeTimer {
        broker: BrokerId,
    },
    FlushDone {
        broker: BrokerId,
        generation: u64,
        flush_id: u64,
        paths: Vec<String>,
    },
    FaultStart {
        index: usize,
    },
    FaultEnd {
        index: usize,
    },
    /// The setup phase of a cluster must be done by now.
    SetupDeadline,
    /// The next step of rolling restart `index` (fault index).
    Rolling {
        index: usize,
        step: RollingStep,
    },
    Heal,
    End,
}

/// A rolling restart goes broker by broker: stop it gracefully, restart it
/// `duration_ms` after it exited, wait until the cluster is healthy
/// again (every broker up, every partition led with a full ISR), wait
/// `gap_ms`, then the next broker; as operators do it.
#[derive(Debug, Clone, Copy)]
pub(super) enum RollingStep {
    Stop(BrokerId),
    /// Waiting for the broker to finish its controlled shutdown and exit.
    Stopping(BrokerId),
    Restart(BrokerId),
    /// Waiting for health before stopping this broker.
    Wait(BrokerId),
}

/// The pending events in time order. The heap orders small keys (time,
/// sequence, slot); the events themselves wait in a slab, so that sifting
/// moves 24 bytes instead of a whole request or response (the heap's
/// moves were a tenth of a cluster run).
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    heap: BinaryHeap<Key>,
    slab: Vec<Option<EventKind>>,
    free: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    at: Instant,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest event goes
    /// first; the sequence number breaks ties in insertion order (and is
    /// unique, so the slot never decides).
    fn cmp(&self, other: &Key) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl EventQueue {
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(super) fn push(&mut self, at: Instant, seq: u64, kind: EventKind) {
        let slot = match self.free.pop() {
            Some(slot) => {
                debug_assert!(self.slab[slot as usize].is_none(), "a free slot");
                self.slab[slot as usize] = Some(kind);
                slot
            }
            None => {
                self.slab.push(Some(kind));
                u32::try_from(self.slab.len() - 1).expect("queue bounded by EVENTS_QUEUED_MAX")
            }
        };
        self.heap.push(Key { at, seq, slot });
    }

    /// The earliest event and its time.
    pub(super) fn pop(&mut self) -> Option<(Instant, EventKind)> {
        let key = self.heap.pop()?;
        let kind = self.slab[key.slot as usize]
            .take()
            .expect("every queued key has its event");
        self.free.push(key.slot);
        Some((key.at, kind))
    }
}

/// One trace line's event.
#[derive(Serialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub(super) enum Ev<'a> {
    Swarm {
        swarm: &'a Swarm,
    },
    Fault {
        index: usize,
        fault: &'a Fault,
        start: bool,
    },
    FaultSkipped {
        index: usize,
        why: &'a str,
    },
    Connect {
        client: ClientId,
        conn: ConnId,
        /// Cluster scenarios only (a standalone broker is broker 0).
        #[serde(skip_serializing_if = "Option::is_none")]
        broker: Option<BrokerId>,
    },
    PeerConnect {
        broker: BrokerId,
        peer: BrokerId,
        channel: &'a str,
        conn: ConnId,
    },
    PeerUnreachable {
        broker: BrokerId,
        peer: BrokerId,
    },
    Connected {
        conn: ConnId,
    },
    ConnectFailed {
        client: ClientId,
        conn: ConnId,
    },
    Close {
        conn: ConnId,
        by: &'a str,
        why: &'a str,
    },
    Request {
        conn: ConnId,
        api: i16,
        corr: i32,
        bytes: u64,
    },
    Response {
        conn: ConnId,
        api: i16,
        corr: i32,
        bytes: u64,
    },
    Drop {
        conn: ConnId,
        what: &'a str,
    },
    Flush {
        broker: BrokerId,
        id: u64,
        files: usize,
    },
    FlushDone {
        broker: BrokerId,
        id: u64,
        ok: bool,
    },
    Timer {
        broker: BrokerId,
    },
    Crash {
        broker: BrokerId,
        power_loss: bool,
        torn: Option<&'a str>,
    },
    Restart {
        broker: BrokerId,
    },
    /// Graceful shutdown: the broker stops taking input.
    Stopping {
        broker: BrokerId,
    },
    /// ... and exits, its flushes done (`clean`) or given up on.
    Stopped {
        broker: BrokerId,
        clean: bool,
    },
    /// A fault's `target` resolved to a broker.
    Target {
        index: usize,
        broker: BrokerId,
    },
    /// The setup phase moved on (cluster scenarios).
    Setup {
        step: &'a str,
    },
    /// A client learned a partition's leader and leader epoch from
    /// Metadata, newer than anything seen before.
    Leader {
        tp: &'a Tp,
        broker: Option<BrokerId>,
        epoch: i32,
    },
    Invoke {
        send: SendId,
        producer: ClientId,
        tp: &'a Tp,
        acks: i16,
        records: usize,
    },
    Complete {
        send: SendId,
        outcome: SendOutcome,
    },
    Poll {
        consumer: ClientId,
        tp: &'a Tp,
        from: i64,
        records: usize,
        hw: i64,
        error: i16,
    },
    Seek {
        consumer: ClientId,
        tp: &'a Tp,
        offset: i64,
    },
    Hw {
        broker: BrokerId,
        tp: &'a Tp,
        hw: i64,
    },
    Violation {
        checker: &'a str,
        message: &'a str,
    },
    /// A consumer group member's step (`groups.rs`).
    Group {
        member: ClientId,
        what: &'a str,
    },
    Heal,
    End,
}
