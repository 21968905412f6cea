//! Consumer groups: simulated consumers that are members of one group
//! (`[groups]` in the scenario), and the group checkers.
//!
//! A member is a client like the others (`clients.rs`): it finds the
//! coordinator (FindCoordinator: the leader of the group's
//! `__consumer_offsets` partition, which moves on fail-over), joins, is
//! assigned partitions, fetches from their leaders with the consumer code
//! of `clients.rs`, commits what it read, and gives partitions up when told.
//!
//! Classic protocol: JoinGroup / SyncGroup / Heartbeat / LeaveGroup, the
//! leader runs the assignor client-side, as Kafka's clients do: `range`
//! (eager: every member gives up everything before it rejoins) or
//! `cooperative-sticky` (KIP-429: a member keeps what it owns across a
//! rebalance; a partition that moves is first taken from its owner, who
//! rejoins after giving it up, and given to its new owner in the next
//! generation). Static membership (`group.instance.id`) as an option.
//!
//! Consumer protocol (KIP-848): ConsumerGroupHeartbeat; the coordinator
//! assigns and the member reconciles: it commits and gives up what its new
//! assignment lacks, and says so in its next heartbeat.
//!
//! Members churn during the fault phase (leave, crash without a word,
//! stall and carry on) and are all back by the heal.
//!
//! # What a member owns
//!
//! `no_double_ownership` judges what members believe they own: from the
//! assignment's arrival until the member has given the partition up. A
//! member acts on that belief only while it may: while its process runs
//! (a stalled process does nothing), and while it holds a lease, the send
//! time of its last request the coordinator answered with success
//! (SyncGroup, Heartbeat, ConsumerGroupHeartbeat) plus the session timeout,
//! less a margin for clock drift. The coordinator cannot expire a member
//! before that, so a member cut off from it stops (no fetch, no commit)
//! before anyone else may be given its partitions, as Kafka's clients do
//! on a session timeout. A stalled member that wakes up revalidates first
//! (one heartbeat) before acting again. Those are the partitions a member
//! may process at an instant, and no two members may share one.

use super::*;
use crate::scenario::{GroupProtocol, Groups};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as HbPartitions;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::Decodable;
use uuid::Uuid;

const FIND_COORDINATOR_VERSION: i16 = 3;
const JOIN_GROUP_VERSION: i16 = 5;
const SYNC_GROUP_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 3;
const LEAVE_GROUP_VERSION: i16 = 3;
const OFFSET_COMMIT_CLASSIC_VERSION: i16 = 8;
/// v9: `generation_id_or_member_epoch` carries the KIP-848 member epoch.
const OFFSET_COMMIT_CONSUMER_VERSION: i16 = 9;
const OFFSET_FETCH_VERSION: i16 = 7;
const CONSUMER_GROUP_HEARTBEAT_VERSION: i16 = 0;
/// The consumer protocol's subscription and assignment versions.
const SUBSCRIPTION_VERSION: i16 = 2;
const ASSIGNMENT_VERSION: i16 = 1;
/// `retry.backoff.ms` between group requests after an error.
const GROUP_BACKOFF_MS: u64 = 100;
/// A churn schedule holds at most this many actions per member.
const CHURN_PER_MEMBER_MAX: usize = 1_000;
/// Commit checks awaiting their response, at most (stale ones are dropped).
const COMMIT_CHECKS_MAX: usize = 10_000;

const CLASSIC_RANGE: &str = "range";
const COOPERATIVE_STICKY: &str = "cooperative-sticky";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    Running,
    /// A stalled process: it does nothing until then.
    Paused {
        until: Instant,
    },
    /// No process (it left or crashed); a new one starts then.
    Down {
        until: Instant,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not in the group: joins next.
    Unjoined,
    /// Classic: JoinGroup answered, SyncGroup to send.
    Syncing,
    /// In the group: heartbeats.
    Stable,
    /// Leaving on purpose: gives up its partitions, leaves, then stops.
    Leaving { down_until: Instant },
}

#[derive(Debug, Clone)]
enum Req {
    Find,
    Join,
    Sync,
    Heartbeat,
    Leave,
    /// `revoking`: the partitions are given up once it is answered.
    Commit {
        offsets: Vec<(Tp, i64)>,
        revoking: bool,
    },
    OffsetFetch,
}

#[derive(Debug, Clone)]
struct GroupInFlight {
    broker: BrokerId,
    correlation_id: i32,
    deadline: Instant,
    sent_at: Instant,
    req: Req,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChurnKind {
    Leave,
    Crash,
    Pause,
}

pub(super) struct GroupMember {
    /// The member's number in `[groups].members`.
    index: usize,
    /// Its fetch state: positions of the owned partitions whose committed
    /// offset is known.
    pub(super) consumer: Consumer,
    pub(super) life: Life,
    instance_id: Option<String>,
    coordinator: Option<BrokerId>,
    find_ask: BrokerId,
    not_before: Instant,
    member_id: String,
    /// Classic generation, or KIP-848 member epoch.
    generation: i32,
    phase: Phase,
    in_flight: Option<GroupInFlight>,
    /// The partitions it believes it owns.
    owned: BTreeSet<Tp>,
    /// Owned partitions it is giving up: committed, then dropped.
    revoke: BTreeSet<Tp>,
    /// Classic cooperative: rejoin once `revoke` is done.
    rejoin_after_revoke: bool,
    /// Classic cooperative leader: its assignment held partitions back
    /// (claimed by another member): it rejoins once synced, so that a
    /// follow-up rebalance hands them on even if their claim was stale.
    rejoin_after_sync: bool,
    lease_until: Instant,
    /// Woke from a stall: acts again after one successful heartbeat.
    revalidate: bool,
    next_heartbeat_at: Instant,
    next_commit_at: Instant,
    /// Last committed position per partition (skips empty commits).
    committed: BTreeMap<Tp, i64>,
    /// Classic leader: the assignment to send with SyncGroup.
    assignments: Vec<(String, Bytes)>,
    heartbeat_interval_ms: u64,
    churn: VecDeque<(Instant, ChurnKind, u64)>,
    /// KIP-848: the epoch last received in this membership (since the last
    /// join), for `member_epoch_monotonic`.
    epoch_seen: Option<i32>,
    /// KIP-848: the send time of the earliest heartbeat not answered with
    /// success yet. The coordinator may have started a revocation (and its
    /// rebalance timeout) when it handled one whose answer was lost, so a
    /// later answer holds the lease only from then; while set, the next
    /// heartbeat is a full request (the coordinator answers it with the
    /// assignment), as Java's client sends after a failed heartbeat.
    unanswered_since: Option<Instant>,
    /// KIP-848: since when (a heartbeat's send time, at the latest) the
    /// coordinator may be timing a revocation of this member: from the
    /// answer that told it to give partitions up until an answer to a
    /// heartbeat sent after it gave them up. The coordinator fences a
    /// member whose revocation outlasts its rebalance timeout, so the
    /// lease does not outlast that either.
    revocation_clock: Option<Instant>,
    /// When it last finished giving partitions up.
    revoked_at: Instant,
}

/// An OffsetCommit of a member as its coordinator received it.
struct CommitCheck {
    /// Whether the coordinator held that generation / member epoch (and
    /// what it held instead).
    verdict: Result<(), String>,
    carried: i32,
    offsets: Vec<(Tp, i64)>,
}

/// The world's group state: config and checker memory.
pub(super) struct GroupsState {
    pub(super) config: Groups,
    /// The members' client ids.
    members: Vec<ClientId>,
    /// The partitions the group consumes.
    subscribed: Vec<Tp>,
    topic_ids: BTreeMap<Uuid, String>,
    /// (client, correlation id) of a commit -> whether the coordinator
    /// that handled it held that generation / member epoch, and what it
    /// held.
    commit_checks: BTreeMap<(ClientId, i32), CommitCheck>,
    /// monotonic_committed_offsets: the highest committed offset seen per
    /// partition (accepted commits, OffsetFetch answers).
    committed_seen: BTreeMap<Tp, i64>,
    /// Commits whose outcome no one learned (the answer was lost): where
    /// they stand among the others is unknown.
    commits_unknown: BTreeMap<Tp, BTreeSet<i64>>,
    /// Partitions a member reset (OffsetOutOfRange): its next commit may
    /// go back.
    resets: BTreeSet<Tp>,
    stable_at: Option<Instant>,
    pub(super) stats: GroupStats,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupStats {
    pub joins: u64,
    pub rebalances_seen: u64,
    pub commits_accepted: u64,
    pub commits_refused: u64,
    pub leaves: u64,
    pub crashes: u64,
    pub pauses: u64,
    pub lost_assignments: u64,
    pub coordinator_moves: u64,
    /// After the heal: ms until every member was stable.
    pub stable_after_heal_ms: Option<u64>,
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn coordinator_error(c: i16) -> bool {
    [
        ResponseError::NotCoordinator,
        ResponseError::CoordinatorNotAvailable,
        ResponseError::CoordinatorLoadInProgress,
    ]
    .iter()
    .any(|e| e.code() == c)
}

fn encode_versioned<T: Encodable>(value: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&version.to_be_bytes());
    value.encode(&mut buf, version).expect("encodes");
    buf.freeze()
}

fn decode_versioned<T: Decodable>(bytes: &Bytes, max_version: i16) -> Option<T> {
    if bytes.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).min(max_version);
    if version < 0 {
        return None;
    }
    let mut body = bytes.slice(2..);
    T::decode(&mut body, version).ok()
}

fn by_topic(tps: impl IntoIterator<Item = Tp>) -> BTreeMap<String, Vec<i32>> {
    let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        m.entry(t).or_default().push(p);
    }
    m
}

fn tp_name(tp: &Tp) -> String {
    format!("{}-{}", tp.0, tp.1)
}

/// The classic leader's assignment: member id -> partitions. `owned` is
/// what each member said it owns (cooperative only). Eager `range`: per
/// topic, contiguous ranges over the members in id order. Cooperative:
/// balanced and sticky, and a partition some member owns goes to no one
/// else in this generation (KIP-429), unless `direct_move` (the bug).
fn classic_assign(
    members: &[(String, BTreeSet<Tp>)],
    partitions: &[Tp],
    cooperative: bool,
    direct_move: bool,
) -> BTreeMap<String, BTreeSet<Tp>> {
    let mut target: BTreeMap<String, BTreeSet<Tp>> = members
        .iter()
        .map(|(m, _)| (m.clone(), BTreeSet::new()))
        .collect();
    if members.is_empty() {
        return target;
    }
    if !cooperative {
        for (topic, ps) in by_topic(partitions.iter().cloned()) {
            let per = ps.len() / members.len();
            let extra = ps.len() % members.len();
            let mut start = 0;
            for (i, (m, _)) in members.iter().enumerate() {
                let len = per + usize::from(i < extra);
                let set = target.get_mut(m).expect("listed");
                for p in &ps[start..start + len] {
                    set.insert((topic.clone(), *p));
                }
                start += len;
            }
        }
        return target;
    }
    // Who claims each partition; a partition claimed twice (stale claims)
    // is contended: every claimer gives it up first.
    let mut claims: BTreeMap<&Tp, Vec<usize>> = BTreeMap::new();
    for (i, (_, owned)) in members.iter().enumerate() {
        for tp in owned {
            claims.entry(tp).or_default().push(i);
        }
    }
    let n = members.len();
    let quota = |i: usize| partitions.len() / n + usize::from(i < partitions.len() % n);
    let mut counts = vec![0usize; n];
    let mut balanced: Vec<Option<usize>> = vec![None; partitions.len()];
    let mut free = Vec::new();
    for (k, tp) in partitions.iter().enumerate() {
        match claims.get(tp).map(Vec::as_slice) {
            Some([i]) if counts[*i] < quota(*i) => {
                counts[*i] += 1;
                balanced[k] = Some(*i);
            }
            _ => free.push(k),
        }
    }
    for k in free {
        let i = (0..n)
            .filter(|i| counts[*i] < quota(*i))
            .min_by_key(|i| counts[*i])
            .expect("quotas cover every partition");
        counts[i] += 1;
        balanced[k] = Some(i);
    }
    for (k, tp) in partitions.iter().enumerate() {
        let i = balanced[k].expect("assigned");
        let claimed_by_other = claims
            .get(tp)
            .is_some_and(|c| c.iter().any(|other| *other != i));
        if claimed_by_other && !direct_move {
            continue; // taken from its owner now, given in the next generation
        }
        target
            .get_mut(&members[i].0)
            .expect("listed")
            .insert(tp.clone());
    }
    target
}

impl GroupMember {
    fn new(
        index: usize,
        instance_id: Option<String>,
        now: Instant,
        find_ask: BrokerId,
        positions: Positions,
    ) -> Self {
        assert!(positions.is_empty(), "a new member holds no position");
        GroupMember {
            index,
            consumer: Consumer {
                positions,
                next_fetch_at: now,
                in_flight: BrokerMap::new(),
                sessions: BrokerMap::new(),
            },
            life: Life::Running,
            instance_id,
            coordinator: None,
            find_ask,
            not_before: now,
            member_id: String::new(),
            generation: -1,
            phase: Phase::Unjoined,
            in_flight: None,
            owned: BTreeSet::new(),
            revoke: BTreeSet::new(),
            rejoin_after_revoke: false,
            rejoin_after_sync: false,
            lease_until: now,
            revalidate: false,
            next_heartbeat_at: now,
            next_commit_at: now,
            committed: BTreeMap::new(),
            assignments: Vec::new(),
            heartbeat_interval_ms: 1_000,
            churn: VecDeque::new(),
            epoch_seen: None,
            unanswered_since: None,
            revocation_clock: None,
            revoked_at: now,
        }
    }

    /// The partitions it may act on now (see the module comment).
    fn active(&self, now: Instant) -> bool {
        self.life == Life::Running && !self.revalidate && self.lease_until > now
    }
}

impl World {
    fn groups(&self) -> &GroupsState {
        self.groups.as_ref().expect("a [groups] scenario")
    }

    fn groups_mut(&mut self) -> &mut GroupsState {
        self.groups.as_mut().expect("a [groups] scenario")
    }

    pub(super) fn member(&self, client: ClientId) -> &GroupMember {
        match &self.clients[client].kind {
            ClientKind::Member(m) => m,
            _ => unreachable!("client {client} is a group member"),
        }
    }

    fn member_mut(&mut self, client: ClientId) -> &mut GroupMember {
        match &mut self.clients[client].kind {
            ClientKind::Member(m) => m,
            _ => unreachable!("client {client} is a group member"),
        }
    }

    fn group_event(&mut self, client: ClientId, what: &str) {
        self.emit(Ev::Group {
            member: client,
            what,
        });
    }

    /// Broker settings a `[groups]` scenario needs: one small offsets
    /// topic, short sessions.
    pub(super) fn group_node_config(scenario: &Scenario, config: &mut NodeConfig, bugs: &[Bug]) {
        let Some(g) = &scenario.groups else { return };
        config.offsets_topic_partitions = 1;
        config.group_initial_rebalance_delay_ms = 100;
        config.group_min_session_timeout_ms = 100;
        config.consumer_group_session_timeout_ms = g.session_timeout_ms;
        config.consumer_group_heartbeat_interval_ms = g.heartbeat_interval_ms;
        config.group_bugs = bugs::group_bugs(bugs);
    }

    /// Adds the members (after every other client).
    pub(super) fn add_members(&mut self) {
        let Some(config) = self.scenario.groups.clone() else {
            return;
        };
        let mut members = Vec::new();
        for (i, az) in config.members.iter().enumerate() {
            let az = self
                .az_names
                .iter()
                .position(|a| a == az)
                .expect("validated AZ");
            let instance = config.static_membership.then(|| format!("sim-member-{i}"));
            let ask = self.rng_client.gen_range(0..self.brokers.len());
            let positions = Positions::new(self.tp_base.clone());
            let member = GroupMember::new(i, instance, self.epoch, ask, positions);
            let mut client = self.new_client(az, ClientKind::Member(Box::new(member)));
            if let Some(m) = &mut client.meta {
                m.first_ask(ask);
            }
            members.push(self.clients.len());
            self.clients.push(client);
        }
        let subscribed = self.tps.clone();
        self.groups = Some(GroupsState {
            config,
            members,
            subscribed,
            topic_ids: BTreeMap::new(),
            commit_checks: BTreeMap::new(),
            committed_seen: BTreeMap::new(),
            commits_unknown: BTreeMap::new(),
            resets: BTreeSet::new(),
            stable_at: None,
            stats: GroupStats::default(),
        });
    }

    /// The run begins: members start (staggered) and their churn is drawn
    /// from a stream of its own, so group scenarios shift no other draw.
    pub(super) fn groups_begin(&mut self) {
        let Some(g) = &self.groups else { return };
        let members = g.members.clone();
        let churn = g.config.churn.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x6772_6f75_7073);
        let fault_ms = self.scenario.phases.fault_ms;
        for client in members {
            let start = self.now + Duration::from_micros(rng.gen_range(0..50_000));
            // Churn: one Poisson process over every kind, each action over
            // before the fault phase ends.
            let rate_per_ms =
                (churn.leave_per_min + churn.crash_per_min + churn.pause_per_min) / 60_000.0;
            let mut schedule = VecDeque::new();
            if rate_per_ms > 0.0 {
                let mut t_ms = 0.0f64;
                while schedule.len() < CHURN_PER_MEMBER_MAX {
                    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                    t_ms += -u.ln() / rate_per_ms;
                    let down = uniform(&mut rng, churn.down_ms);
                    // Leaving takes a moment (commit, LeaveGroup) too.
                    if t_ms as u64 + down + 2_000 >= fault_ms {
                        break;
                    }
                    let pick = rng.gen_range(0.0..rate_per_ms * 60_000.0);
                    let kind = if pick < churn.leave_per_min {
                        ChurnKind::Leave
                    } else if pick < churn.leave_per_min + churn.crash_per_min {
                        ChurnKind::Crash
                    } else {
                        ChurnKind::Pause
                    };
                    let at = self.now + Duration::from_millis(t_ms as u64);
                    schedule.push_back((at, kind, down));
                    t_ms += down as f64 + 2_000.0;
                }
            }
            let m = self.member_mut(client);
            m.not_before = start;
            m.churn = schedule;
            if let Some(meta) = &mut self.clients[client].meta {
                meta.start_at(start);
            }
            self.rearm_client(client);
        }
    }

    /// Topic ids from any Metadata answer (KIP-848 assignments name them).
    pub(super) fn learn_topic_ids(&mut self, r: &MetadataResponse) {
        let Some(g) = &mut self.groups else { return };
        for t in &r.topics {
            if let Some(name) = &t.name {
                if !t.topic_id.is_nil() {
                    g.topic_ids.insert(t.topic_id, name.0.to_string());
                }
            }
        }
    }

    // --- what the client machinery asks of a member --------------------------------

    /// Whether the member needs a connection to `broker`.
    pub(super) fn member_wants(&self, client: ClientId, broker: BrokerId) -> bool {
        let m = self.member(client);
        if m.life != Life::Running {
            return false;
        }
        match m.coordinator {
            None => m.find_ask == broker,
            Some(c) => c == broker,
        }
    }

    /// Whether the member may fetch now (plain consumers always may).
    pub(super) fn client_may_fetch(&self, client: ClientId) -> bool {
        match &self.clients[client].kind {
            ClientKind::Member(m) => m.active(self.now),
            _ => true,
        }
    }

    /// Whether a group request to `broker` is in flight that a fetch must
    /// not queue behind (answers leave a connection in order, and a
    /// JoinGroup may wait a whole rebalance).
    pub(super) fn member_blocks_fetch(&self, client: ClientId, broker: BrokerId) -> bool {
        match &self.clients[client].kind {
            ClientKind::Member(m) => m.in_flight.as_ref().is_some_and(|f| f.broker == broker),
            _ => false,
        }
    }

    pub(super) fn member_lost_connection(&mut self, client: ClientId, broker: BrokerId) {
        let n = self.brokers.len();
        let now = self.now;
        let m = self.member_mut(client);
        m.consumer.fetch_lost(broker);
        if m.find_ask == broker {
            m.find_ask = (broker + 1) % n;
        }
        let lost = m.in_flight.as_ref().is_some_and(|f| f.broker == broker);
        if m.coordinator == Some(broker) {
            m.coordinator = None;
        }
        if !lost {
            return;
        }
        let f = m.in_flight.take().expect("checked");
        m.not_before = now + Duration::from_millis(GROUP_BACKOFF_MS);
        match f.req {
            Req::Commit { offsets, revoking } => {
                let g = self.groups_mut();
                for (tp, offset) in &offsets {
                    g.commits_unknown
                        .entry(tp.clone())
                        .or_default()
                        .insert(*offset);
                }
                if revoking {
                    // Retried with the next coordinator while the lease
                    // holds; see `member_tick`.
                }
            }
            Req::Join | Req::Sync => {
                let m = self.member_mut(client);
                if m.phase == Phase::Syncing {
                    m.phase = Phase::Unjoined;
                }
            }
            Req::Leave => {
                if let Phase::Leaving { down_until } = self.member(client).phase {
                    self.member_down(client, down_until);
                }
            }
            Req::Find | Req::Heartbeat | Req::OffsetFetch => {}
        }
    }

    /// When the member next has something to do.
    pub(super) fn member_next_wake(&self, client: ClientId) -> Option<Instant> {
        let m = self.member(client);
        let now = self.now;
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        match m.life {
            Life::Paused { until } | Life::Down { until } => return Some(until.max(now)),
            Life::Running => {}
        }
        if let Some((at, _, _)) = m.churn.front() {
            consider((*at).max(now));
        }
        if let Some(f) = &m.in_flight {
            consider(f.deadline.max(now));
            return next;
        }
        if m.lease_until > now {
            // Fetching stops at the lease's end.
            consider(m.lease_until);
        }
        let soon = m.not_before.max(now);
        // Nothing goes out before the connection it needs is open (its
        // opening ticks the client).
        let to = m.coordinator.unwrap_or(m.find_ask);
        if self.clients[client].conn(to).is_none() {
            return next;
        }
        let pending_fetch = m.active(now)
            && m.owned
                .iter()
                .any(|tp| !m.consumer.positions.contains_key(tp));
        let immediate = m.coordinator.is_none()
            || !m.revoke.is_empty()
            || m.revalidate
            || matches!(
                m.phase,
                Phase::Unjoined | Phase::Syncing | Phase::Leaving { .. }
            )
            || pending_fetch;
        if immediate {
            consider(soon);
        } else if m.phase == Phase::Stable {
            consider(m.next_heartbeat_at.max(soon));
            if m.active(now) {
                consider(m.next_commit_at.max(soon));
            }
        }
        next
    }

    // --- the member's loop -------------------------------------------------------------

    pub(super) fn member_tick(&mut self, client: ClientId) {
        let now = self.now;
        match self.member(client).life {
            Life::Paused { until } if until <= now => {
                let m = self.member_mut(client);
                m.life = Life::Running;
                m.revalidate = !m.owned.is_empty();
                m.next_heartbeat_at = now;
                self.group_event(client, "wakes from a stall");
            }
            Life::Down { until } if until <= now => self.member_restart(client),
            Life::Running => {}
            _ => return,
        }
        // Churn.
        if let Some((at, kind, down)) = self.member(client).churn.front().copied() {
            if at <= now {
                self.member_mut(client).churn.pop_front();
                self.member_churn(client, kind, down);
                if self.member(client).life != Life::Running {
                    return;
                }
            }
        }
        // A request unanswered too long: close, as clients do.
        if let Some(f) = &self.member(client).in_flight {
            if f.deadline <= now {
                let b = f.broker;
                self.client_close(client, b, "group request timeout");
            }
        }
        self.member_step(client);
        self.check_members_view();
    }

    /// Sends the member's next group request, if it has one and may.
    fn member_step(&mut self, client: ClientId) {
        let now = self.now;
        let protocol = self.groups().config.protocol;
        let m = self.member(client);
        if m.life != Life::Running || m.in_flight.is_some() || m.not_before > now {
            return;
        }
        let Some(coordinator) = m.coordinator else {
            let ask = m.find_ask;
            if let Some(conn) = self.clients[client].conn(ask) {
                self.send_find_coordinator(client, ask, conn);
            }
            return;
        };
        let Some(conn) = self.clients[client].conn(coordinator) else {
            return; // connecting (client_wants)
        };
        // Give up what is being revoked: commit, then drop.
        if !m.revoke.is_empty() {
            if m.lease_until <= now {
                // Cut off past its lease: the partitions are lost anyway.
                self.member_drop_revoked(client);
                return self.member_step(client);
            }
            let offsets: Vec<(Tp, i64)> = m
                .revoke
                .iter()
                .filter_map(|tp| m.consumer.positions.get(tp).map(|p| (tp.clone(), p)))
                .filter(|(tp, p)| m.committed.get(tp) != Some(p))
                .collect();
            if offsets.is_empty() {
                self.member_drop_revoked(client);
                return self.member_step(client);
            }
            return self.send_commit(client, coordinator, conn, offsets, true);
        }
        match m.phase {
            Phase::Leaving { .. } => return self.send_leave(client, coordinator, conn),
            Phase::Unjoined => {
                return match protocol {
                    GroupProtocol::Classic => self.send_join(client, coordinator, conn),
                    GroupProtocol::Consumer => {
                        self.send_consumer_heartbeat(client, coordinator, conn)
                    }
                }
            }
            Phase::Syncing => return self.send_sync(client, coordinator, conn),
            Phase::Stable => {}
        }
        if m.revalidate || m.next_heartbeat_at <= now {
            return match protocol {
                GroupProtocol::Classic => self.send_heartbeat(client, coordinator, conn),
                GroupProtocol::Consumer => self.send_consumer_heartbeat(client, coordinator, conn),
            };
        }
        if !m.active(now) {
            return;
        }
        let unknown: Vec<Tp> = m
            .owned
            .iter()
            .filter(|tp| !m.consumer.positions.contains_key(tp))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return self.send_offset_fetch(client, coordinator, conn, unknown);
        }
        if m.next_commit_at <= now {
            let interval = self.groups().config.commit_interval_ms;
            let m = self.member(client);
            let offsets: Vec<(Tp, i64)> = m
                .owned
                .iter()
                .filter_map(|tp| m.consumer.positions.get(tp).map(|p| (tp.clone(), p)))
                .filter(|(tp, p)| m.committed.get(tp) != Some(p))
                .collect();
            self.member_mut(client).next_commit_at = now + Duration::from_millis(interval);
            if !offsets.is_empty() {
                self.send_commit(client, coordinator, conn, offsets, false);
            }
        }
    }

    fn member_churn(&mut self, client: ClientId, kind: ChurnKind, down_ms: u64) {
        let until = self.now + Duration::from_millis(down_ms);
        match kind {
            ChurnKind::Leave => {
                self.groups_mut().stats.leaves += 1;
                self.group_event(client, "leaves");
                let m = self.member_mut(client);
                if m.phase == Phase::Unjoined && m.member_id.is_empty() {
                    return self.member_down(client, until);
                }
                m.phase = Phase::Leaving { down_until: until };
                let owned = m.owned.clone();
                m.revoke.extend(owned);
            }
            ChurnKind::Crash => {
                self.groups_mut().stats.crashes += 1;
                self.group_event(client, "crashes");
                self.member_down(client, until);
            }
            ChurnKind::Pause => {
                self.groups_mut().stats.pauses += 1;
                self.group_event(client, "stalls");
                self.member_mut(client).life = Life::Paused { until };
            }
        }
    }

    /// The process is gone (crashed, or left): connections close, it
    /// believes nothing; a new one starts at `until`.
    fn member_down(&mut self, client: ClientId, until: Instant) {
        let brokers: Vec<BrokerId> = self.clients[client].conns.keys().copied().collect();
        for b in brokers {
            self.client_close(client, b, "member process gone");
        }
        let m = self.member_mut(client);
        m.life = Life::Down { until };
        m.owned.clear();
        m.revoke.clear();
        m.consumer.positions.clear();
        m.consumer.in_flight.clear();
        m.consumer.sessions.clear();
        m.in_flight = None;
    }

    /// A new process of the member: a fresh member id (a static member
    /// keeps its instance id).
    fn member_restart(&mut self, client: ClientId) {
        let now = self.now;
        let n = self.brokers.len();
        let ask = self.rng_client.gen_range(0..n);
        let positions = Positions::new(self.tp_base.clone());
        let m = self.member_mut(client);
        let fresh = GroupMember::new(m.index, m.instance_id.clone(), now, ask, positions);
        let churn = std::mem::take(&mut m.churn);
        *m = fresh;
        m.churn = churn;
        self.group_event(client, "restarts");
    }

    /// Drops the partitions being revoked (after their commit, or when the
    /// commit cannot happen), then rejoins if the protocol asks.
    fn member_drop_revoked(&mut self, client: ClientId) {
        let now = self.now;
        let m = self.member_mut(client);
        let revoked = std::mem::take(&mut m.revoke);
        m.revoked_at = now;
        for tp in &revoked {
            m.owned.remove(tp);
            m.consumer.positions.remove(tp);
        }
        if m.rejoin_after_revoke {
            m.rejoin_after_revoke = false;
            if m.phase == Phase::Stable {
                m.phase = Phase::Unjoined;
            }
        }
        if !revoked.is_empty() {
            let what = format!(
                "gave up {}",
                revoked.iter().map(tp_name).collect::<Vec<_>>().join(",")
            );
            self.group_event(client, &what);
        }
    }

    /// The member lost its partitions without giving them up (fenced,
    /// expired): no commit.
    fn member_lost(&mut self, client: ClientId, why: &str) {
        let m = self.member_mut(client);
        let had = !m.owned.is_empty();
        m.owned.clear();
        m.revoke.clear();
        m.consumer.positions.clear();
        m.rejoin_after_revoke = false;
        m.revalidate = false;
        m.epoch_seen = None;
        m.unanswered_since = None;
        m.revocation_clock = None;
        if !matches!(m.phase, Phase::Leaving { .. }) {
            m.phase = Phase::Unjoined;
        }
        if had {
            self.groups_mut().stats.lost_assignments += 1;
        }
        self.group_event(client, why);
    }

    fn member_coordinator_lost(&mut self, client: ClientId) {
        let now = self.now;
        let m = self.member_mut(client);
        if let Some(c) = m.coordinator.take() {
            m.find_ask = c;
        }
        m.not_before = now + Duration::from_millis(GROUP_BACKOFF_MS);
        self.groups_mut().stats.coordinator_moves += 1;
    }

    // --- requests ---------------------------------------------------------------------

    /// Sends one group request to `broker` on `conn` (`to`), as API
    /// `api` at version `version`.
    fn group_send(
        &mut self,
        client: ClientId,
        (broker, conn): (BrokerId, ConnId),
        (api, version): (ApiKey, i16),
        body: RequestKind,
        req: Req,
        wait_ms: u64,
    ) {
        let (corr, header) = self.header(client, api, version);
        let deadline = self.now
            + Duration::from_millis(
                self.swarm.request_timeout_ms + wait_ms + self.swarm.fetch_max_wait_ms,
            );
        let now = self.now;
        self.member_mut(client).in_flight = Some(GroupInFlight {
            broker,
            correlation_id: corr,
            deadline,
            sent_at: now,
            req,
        });
        self.send_to_node(conn, header, body);
    }

    /// The one assignor a classic member offers (JoinGroup) and names
    /// (SyncGroup).
    fn classic_protocol_name(&self) -> &'static str {
        if self.groups().config.cooperative() {
            COOPERATIVE_STICKY
        } else {
            CLASSIC_RANGE
        }
    }

    fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.groups().config.group_id.clone()))
    }

    fn send_find_coordinator(&mut self, client: ClientId, broker: BrokerId, conn: ConnId) {
        let body = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(self.groups().config.group_id.clone()))
            .with_key_type(0);
        self.group_send(
            client,
            (broker, conn),
            (ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION),
            RequestKind::FindCoordinator(body),
            Req::Find,
            0,
        );
    }

    fn subscription(&self, client: ClientId) -> Bytes {
        let m = self.member(client);
        let cooperative = self.groups().config.cooperative();
        let topics: BTreeSet<&String> = self.groups().subscribed.iter().map(|(t, _)| t).collect();
        let owned = if cooperative {
            by_topic(m.owned.iter().cloned())
                .into_iter()
                .map(|(t, ps)| {
                    OwnedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(ps)
                })
                .collect()
        } else {
            Vec::new()
        };
        let s = ConsumerProtocolSubscription::default()
            .with_topics(
                topics
                    .into_iter()
                    .map(|t| StrBytes::from_string(t.clone()))
                    .collect(),
            )
            .with_owned_partitions(owned)
            // v2: the generation the owned partitions are from. It also
            // makes the rejoin of a member that saw later generations than
            // the coordinator holds (lost in a fail-over) a changed
            // subscription, which rebalances a Stable group, as Kafka's
            // clients send it.
            .with_generation_id(m.generation);
        encode_versioned(&s, SUBSCRIPTION_VERSION)
    }

    fn send_join(&mut self, client: ClientId, broker: BrokerId, conn: ConnId) {
        let config = &self.groups().config;
        let (session, cooperative) = (config.session_timeout_ms, config.cooperative());
        let m = self.member(client);
        if !cooperative && !m.owned.is_empty() {
            // Eager: everything is given up before the member rejoins.
            let owned = m.owned.clone();
            self.member_mut(client).revoke.extend(owned);
            return self.member_step(client);
        }
        let protocol = self.classic_protocol_name();
        let body = JoinGroupRequest::default()
            .with_group_id(self.group_id())
            .with_session_timeout_ms(session as i32)
            .with_rebalance_timeout_ms(session as i32)
            .with_member_id(StrBytes::from_string(m.member_id.clone()))
            .with_group_instance_id(m.instance_id.clone().map(StrBytes::from_string))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(protocol))
                .with_metadata(self.subscription(client))]);
        self.groups_mut().stats.joins += 1;
        self.group_send(
            client,
            (broker, conn),
            (ApiKey::JoinGroup, JOIN_GROUP_VERSION),
            RequestKind::JoinGroup(body),
            Req::Join,
            session,
        );
    }

    fn send_sync(&mut self, client: ClientId, broker: BrokerId, conn: ConnId) {
        let session = self.groups().config.session_timeout_ms;
        let m = self.member(client);
        let protocol = self.classic_protocol_name();
        let body = SyncGroupRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(m.generation)
            .with_member_id(StrBytes::from_string(m.member_id.clone()))
            .with_group_instance_id(m.instance_id.clone().map(StrBytes::from_string))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str(protocol)))
            .with_assignments(
                m.assignments
                    .iter()
                    .map(|(id, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(id.clone()))
                            .with_assignment(a.clone())
                    })
                    .collect(),
            );
        self.group_send(
            client,
            (broker, conn),
            (ApiKey::SyncGroup, SYNC_GROUP_VERSION),
            RequestKind::SyncGroup(body),
            Req::Sync,
            session,
        );
    }

    fn send_heartbeat(&mut self, client: ClientId, broker: BrokerId, conn: ConnId) {
        let m = self.member(client);
        let body = HeartbeatRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(m.generation)
            .with_member_id(StrBytes::from_string(m.member_id.clone()))
            .with_group_instance_id(m.instance_id.clone().map(StrBytes::from_string));
        let interval = self.groups().config.heartbeat_interval_ms;
        self.member_mut(client).next_heartbeat_at = self.now + Duration::from_millis(interval);
        self.group_send(
            client,
            (broker, conn),
            (ApiKey::Heartbeat, HEARTBEAT_VERSION),
            RequestKind::Heartbeat(body),
            Req::Heartbeat,
            0,
        );
    }

    fn send_leave(&mut self, client: ClientId, broker: BrokerId, conn: ConnId) {
        let protocol = self.groups().config.protocol;
        let m = self.member(client);
        if !m.owned.is_empty() {
            // Everything is given up (committed) before the member leaves.
            let owned = m.owned.clone();
            self.member_mut(client).revoke.extend(owned);
            return self.member_step(client);
        }
        if protocol == GroupProtocol::Consumer {
            // KIP-848: a heartbeat with epoch -1 (-2 for a static member).
            return self.send_consumer_heartbeat(client, broker, conn);
        }
        let body = LeaveGroupRequest::default()
            .with_group_id(self.group_id())
            .with_members(vec![MemberIdentity::default()
                .with_member_id(StrBytes::from_string(m.member_id.clone()))
                .with_group_instance_id(
                    m.instance_id.clone().map(StrBytes::from_string),
                )]);
        self.group_send(
            client,
            (broker, conn),
            (ApiKey::LeaveGroup, LEAVE_GROUP_VERSION),
            RequestKind::LeaveGroup(body),
            Req::Leave,
            0,
        );
    }

    fn send_commit(
        &mut self,
        client: ClientId,
        broker: BrokerId,
        conn: ConnId,
        offsets: Vec<(Tp, i64)>,
        revoking: bool,
    ) {
        let protocol = self.groups().config.protocol;
        let m = self.member(client);
        let topics = by_topic(offsets.iter().map(|(tp, _)| tp.clone()))
            .into_iter()
            .map(|(topic, ps)| {
                let partitions = ps
                    .into_iter()
                    .map(|p| {
                        let offset = offsets
                            .iter()
                            .find(|((t, q), _)| *t == topic && *q == p)
                            .map(|(_, o)| *o)
                            .expect("listed");
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(-1)
                    })
                    .collect();
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(partitions)
            })
            .collect();
        let version = match protocol {
            GroupProtocol::Classic => OFFSET_COMMIT_CLASSIC_VERSION,
            GroupProtocol::Consumer => OFFSET_COMMIT_CONSUMER_VERSION,
        };
        let body = OffsetCommitRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id_or_member_epoch(m.generation)
            .with_member_id(StrBytes::from_string(m.member_id.clone()))
            .with_group_instance_id(m.instance_id.clone().map(StrBytes::from_string))
            .with_retention_time_ms(-1)
            .with_topics(topics);
        self.group_send(
            client,
            (broker, conn),
            (ApiKey::OffsetCommit, version),
            RequestKind::OffsetCommit(body),
            Req::Commit { offsets, revoking },
            0,
        );
    }

    fn send_offset_fetch(
        &mut self,
        client: ClientId,
        broker: BrokerId,
        conn: ConnId,
        tps: Vec<Tp>,
    ) {
        let topics = by_topic(tps)
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t)))
                    .with_partition_indexes(ps)
            })
            .collect();
        let body = OffsetFetchRequest::default()
            .with_group_id(self.group_id())
            .with_topics(Some(topics))
            .with_require_stable(true);
        self.group_send(
            client,
            (broker, conn),
            (ApiKey::OffsetFetch, OFFSET_FETCH_VERSION),
            RequestKind::OffsetFetch(body),
            Req::OffsetFetch,
            0,
        );
    }

    fn send_consumer_heartbeat(&mut self, client: ClientId, broker: BrokerId, conn: ConnId) {
        let g = self.groups();
        let (session, assignor) = (g.config.session_timeout_ms, g.config.assignor().to_string());
        let names: BTreeSet<String> = g.subscribed.iter().map(|(t, _)| t.clone()).collect();
        let ids: BTreeMap<&String, Uuid> = g.topic_ids.iter().map(|(id, n)| (n, *id)).collect();
        let m = self.member(client);
        let leaving = matches!(m.phase, Phase::Leaving { .. });
        let joining = m.phase == Phase::Unjoined;
        let full = joining || m.unanswered_since.is_some();
        let epoch = if leaving {
            if m.instance_id.is_some() {
                -2
            } else {
                -1
            }
        } else if joining {
            0
        } else {
            m.generation
        };
        let owned: Vec<HbPartitions> = by_topic(m.owned.iter().cloned())
            .into_iter()
            .filter_map(|(t, ps)| {
                ids.get(&t).map(|id| {
                    HbPartitions::default()
                        .with_topic_id(*id)
                        .with_partitions(ps)
                })
            })
            .collect();
        let mut body = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(self.group_id())
            .with_member_id(StrBytes::from_string(m.member_id.clone()))
            .with_member_epoch(epoch)
            .with_instance_id(m.instance_id.clone().map(StrBytes::from_string))
            .with_rebalance_timeout_ms(session as i32)
            .with_topic_partitions(Some(owned));
        if full {
            body = body
                .with_subscribed_topic_names(Some(
                    names
                        .into_iter()
                        .map(|n| TopicName(StrBytes::from_string(n)))
                        .collect(),
                ))
                .with_server_assignor(Some(StrBytes::from_string(assignor)));
        }
        if joining {
            self.groups_mut().stats.joins += 1;
        }
        let interval = self.member(client).heartbeat_interval_ms;
        let now = self.now;
        let m = self.member_mut(client);
        m.next_heartbeat_at = now + Duration::from_millis(interval);
        if !leaving {
            m.unanswered_since.get_or_insert(now);
        }
        let req = if leaving { Req::Leave } else { Req::Heartbeat };
        self.group_send(
            client,
            (broker, conn),
            (
                ApiKey::ConsumerGroupHeartbeat,
                CONSUMER_GROUP_HEARTBEAT_VERSION,
            ),
            RequestKind::ConsumerGroupHeartbeat(body),
            req,
            0,
        );
    }

    // --- responses --------------------------------------------------------------------

    /// A response to a member; `false` if it is not one of its group
    /// requests (a fetch, a Metadata answer).
    pub(super) fn member_response(
        &mut self,
        client: ClientId,
        correlation_id: i32,
        body: ResponseKind,
    ) -> Option<ResponseKind> {
        let is_group = matches!(
            body,
            ResponseKind::FindCoordinator(_)
                | ResponseKind::JoinGroup(_)
                | ResponseKind::SyncGroup(_)
                | ResponseKind::Heartbeat(_)
                | ResponseKind::LeaveGroup(_)
                | ResponseKind::OffsetCommit(_)
                | ResponseKind::OffsetFetch(_)
                | ResponseKind::ConsumerGroupHeartbeat(_)
        );
        if !is_group {
            return Some(body);
        }
        let m = self.member_mut(client);
        if m.in_flight
            .as_ref()
            .is_none_or(|f| f.correlation_id != correlation_id)
        {
            return None; // a former life's, or timed out
        }
        let f = m.in_flight.take().expect("checked");
        match body {
            ResponseKind::FindCoordinator(r) => self.on_find_coordinator(client, r),
            ResponseKind::JoinGroup(r) => self.on_join(client, r),
            ResponseKind::SyncGroup(r) => self.on_sync(client, &f, r),
            ResponseKind::Heartbeat(r) => self.on_heartbeat(client, &f, r),
            ResponseKind::LeaveGroup(_) => self.on_left(client),
            ResponseKind::OffsetCommit(r) => self.on_commit(client, f, r),
            ResponseKind::OffsetFetch(r) => self.on_offset_fetch(client, r),
            ResponseKind::ConsumerGroupHeartbeat(r) => self.on_consumer_heartbeat(client, &f, r),
            _ => unreachable!("listed"),
        }
        self.check_members_view();
        None
    }

    fn backoff(&mut self, client: ClientId) {
        let at = self.now + Duration::from_millis(GROUP_BACKOFF_MS);
        self.member_mut(client).not_before = at;
    }

    fn on_find_coordinator(&mut self, client: ClientId, r: FindCoordinatorResponse) {
        let n = self.brokers.len() as i32;
        let m = self.member_mut(client);
        if r.error_code == 0 && (1..=n).contains(&r.node_id.0) {
            m.coordinator = Some(r.node_id.0 as usize - 1);
        } else {
            m.find_ask = (m.find_ask + 1) % n as usize;
            self.backoff(client);
        }
    }

    fn on_join(&mut self, client: ClientId, r: JoinGroupResponse) {
        let e = r.error_code;
        if matches!(self.member(client).phase, Phase::Leaving { .. }) {
            if e == 0 {
                // Joined on its way out: leave under that id.
                let m = self.member_mut(client);
                m.member_id = r.member_id.to_string();
                m.generation = r.generation_id;
            }
            return self.member_step(client);
        }
        if e == 0 {
            let cooperative = self.groups().config.cooperative();
            let direct_move = self.bugs.contains(&Bug::CooperativeDirectMove);
            let m = self.member_mut(client);
            // A member that missed a whole generation (stalled through it,
            // kept in the group as a static member) cannot tell whether
            // the partitions it still holds were handed on and committed
            // by their next owner meanwhile: it treats them as lost, as
            // Java's client does when its generation is reset
            // (onPartitionsLost: no commit, which would take the
            // committed offset back to its stale position).
            let missed = m.generation >= 0
                && r.generation_id > m.generation.saturating_add(1)
                && !m.owned.is_empty();
            let stale = m.generation;
            m.member_id = r.member_id.to_string();
            m.generation = r.generation_id;
            m.phase = Phase::Syncing;
            if missed {
                debug_assert!(cooperative, "eager members own nothing when they rejoin");
                m.owned.clear();
                m.revoke.clear();
                m.consumer.positions.clear();
                m.rejoin_after_revoke = false;
                self.groups_mut().stats.lost_assignments += 1;
                let what = format!(
                    "joined generation {} from {stale}: a generation missed, partitions lost",
                    r.generation_id
                );
                self.group_event(client, &what);
            }
            let m = self.member_mut(client);
            m.assignments.clear();
            m.rejoin_after_sync = false;
            if r.leader == r.member_id {
                let mut members: Vec<(String, BTreeSet<Tp>)> = r
                    .members
                    .iter()
                    .map(|jm| {
                        let owned = decode_versioned::<ConsumerProtocolSubscription>(
                            &jm.metadata,
                            SUBSCRIPTION_VERSION,
                        )
                        .map(|s| {
                            s.owned_partitions
                                .iter()
                                .flat_map(|t| {
                                    t.partitions.iter().map(|p| (t.topic.0.to_string(), *p))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                        (jm.member_id.to_string(), owned)
                    })
                    .collect();
                members.sort_by(|a, b| a.0.cmp(&b.0));
                let partitions = self.groups().subscribed.clone();
                let target = classic_assign(&members, &partitions, cooperative, direct_move);
                let handed: usize = target.values().map(BTreeSet::len).sum();
                self.member_mut(client).rejoin_after_sync = handed < partitions.len();
                let assignments = target
                    .into_iter()
                    .map(|(id, tps)| {
                        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
                            by_topic(tps)
                                .into_iter()
                                .map(|(t, ps)| {
                                    AssignedTopic::default()
                                        .with_topic(TopicName(StrBytes::from_string(t)))
                                        .with_partitions(ps)
                                })
                                .collect(),
                        );
                        (id, encode_versioned(&a, ASSIGNMENT_VERSION))
                    })
                    .collect();
                self.member_mut(client).assignments = assignments;
            }
            let what = format!("joined generation {}", r.generation_id);
            self.group_event(client, &what);
            return self.member_step(client);
        }
        let m = self.member_mut(client);
        if e == code(ResponseError::MemberIdRequired) {
            m.member_id = r.member_id.to_string();
            return self.member_step(client);
        }
        if coordinator_error(e) {
            self.member_coordinator_lost(client);
        } else if e == code(ResponseError::UnknownMemberId)
            || e == code(ResponseError::FencedInstanceId)
        {
            self.member_mut(client).member_id.clear();
            self.member_lost(client, "join refused: unknown member");
            self.backoff(client);
        } else {
            self.backoff(client);
        }
    }

    fn on_sync(&mut self, client: ClientId, f: &GroupInFlight, r: SyncGroupResponse) {
        let e = r.error_code;
        if e == 0 {
            let cooperative = self.groups().config.cooperative();
            let lease = self.lease();
            let assigned: BTreeSet<Tp> =
                decode_versioned::<ConsumerProtocolAssignment>(&r.assignment, ASSIGNMENT_VERSION)
                    .map(|a| {
                        a.assigned_partitions
                            .iter()
                            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
                            .collect()
                    })
                    .unwrap_or_default();
            let now = self.now;
            let interval = self.groups().config.heartbeat_interval_ms;
            let m = self.member_mut(client);
            if matches!(m.phase, Phase::Leaving { .. }) {
                return self.member_step(client);
            }
            m.phase = Phase::Stable;
            m.lease_until = f.sent_at + lease;
            m.revalidate = false;
            m.next_heartbeat_at = now + Duration::from_millis(interval);
            let revoked: BTreeSet<Tp> = m.owned.difference(&assigned).cloned().collect();
            if !revoked.is_empty() {
                debug_assert!(cooperative, "eager members own nothing when they rejoin");
                m.revoke.extend(revoked);
                m.rejoin_after_revoke = true;
            }
            m.owned.extend(assigned.iter().cloned());
            if std::mem::take(&mut m.rejoin_after_sync) {
                m.rejoin_after_revoke = true;
                if m.revoke.is_empty() {
                    m.rejoin_after_revoke = false;
                    m.phase = Phase::Unjoined;
                }
            }
            let what = format!(
                "generation {} assigned {}",
                m.generation,
                assigned.iter().map(tp_name).collect::<Vec<_>>().join(",")
            );
            self.groups_mut().stats.rebalances_seen += 1;
            self.group_event(client, &what);
            return self.member_step(client);
        }
        let m = self.member_mut(client);
        if !matches!(m.phase, Phase::Leaving { .. }) {
            m.phase = Phase::Unjoined;
        }
        if coordinator_error(e) {
            self.member_coordinator_lost(client);
        } else if e == code(ResponseError::RebalanceInProgress) {
            // rejoin now
        } else {
            if e == code(ResponseError::UnknownMemberId) {
                self.member_mut(client).member_id.clear();
            }
            self.member_lost(client, "sync refused");
            self.backoff(client);
        }
    }

    /// How long a successful request's send time holds the lease: the
    /// session timeout less a margin for clock drift.
    fn lease(&self) -> Duration {
        let session = self.groups().config.session_timeout_ms;
        Duration::from_millis(session.saturating_sub(session / 10 + 50))
    }

    fn on_heartbeat(&mut self, client: ClientId, f: &GroupInFlight, r: HeartbeatResponse) {
        let e = r.error_code;
        let lease = self.lease();
        if e == 0 {
            let m = self.member_mut(client);
            m.lease_until = m.lease_until.max(f.sent_at + lease);
            if m.revalidate {
                m.revalidate = false;
                self.group_event(client, "revalidated");
            }
            return;
        }
        if coordinator_error(e) {
            return self.member_coordinator_lost(client);
        }
        if e == code(ResponseError::RebalanceInProgress) {
            let m = self.member_mut(client);
            if m.phase == Phase::Stable {
                m.phase = Phase::Unjoined;
            }
            self.group_event(client, "rebalance");
            return self.member_step(client);
        }
        if e == code(ResponseError::UnknownMemberId) || e == code(ResponseError::FencedInstanceId) {
            self.member_mut(client).member_id.clear();
        }
        self.member_lost(client, "heartbeat refused: rejoins");
        self.backoff(client);
    }

    fn on_left(&mut self, client: ClientId) {
        if let Phase::Leaving { down_until } = self.member(client).phase {
            self.member_down(client, down_until);
        }
    }

    fn on_commit(&mut self, client: ClientId, f: GroupInFlight, r: OffsetCommitResponse) {
        let Req::Commit { offsets, revoking } = f.req else {
            unreachable!("a commit's answer")
        };
        let mut coordinator_moved = false;
        for t in &r.topics {
            for p in &t.partitions {
                let tp: Tp = (t.name.0.to_string(), p.partition_index);
                let Some(offset) = offsets.iter().find(|(x, _)| *x == tp).map(|(_, o)| *o) else {
                    continue;
                };
                if p.error_code == 0 {
                    self.groups_mut().stats.commits_accepted += 1;
                    self.member_mut(client).committed.insert(tp.clone(), offset);
                } else {
                    self.groups_mut().stats.commits_refused += 1;
                    coordinator_moved |= coordinator_error(p.error_code);
                }
            }
        }
        if coordinator_moved {
            // A revoking commit is retried with the new coordinator.
            return self.member_coordinator_lost(client);
        }
        if revoking {
            self.member_drop_revoked(client);
        }
        self.member_step(client);
    }

    fn on_offset_fetch(&mut self, client: ClientId, r: OffsetFetchResponse) {
        if r.error_code != 0 {
            if coordinator_error(r.error_code) {
                self.member_coordinator_lost(client);
            } else {
                self.backoff(client);
            }
            return;
        }
        let ms = self.ms();
        let mut retry = false;
        for t in &r.topics {
            for p in &t.partitions {
                let tp: Tp = (t.name.0.to_string(), p.partition_index);
                if p.error_code != 0 {
                    retry = true;
                    if coordinator_error(p.error_code) {
                        self.member_coordinator_lost(client);
                        return;
                    }
                    continue;
                }
                let m = self.member(client);
                if !m.owned.contains(&tp) || m.consumer.positions.contains_key(&tp) {
                    continue;
                }
                // auto.offset.reset=earliest when nothing is committed.
                let position = p.committed_offset.max(0);
                let m = self.member_mut(client);
                m.consumer.positions.insert(&tp, position);
                m.committed.insert(tp.clone(), position);
                self.emit(Ev::Seek {
                    consumer: client,
                    tp: &tp,
                    offset: position,
                });
                self.consumer_event(ConsumerEvent::Seek {
                    consumer: client as u32,
                    tp,
                    offset: position,
                    at_ms: ms,
                });
            }
        }
        if retry {
            self.backoff(client);
        }
    }

    fn on_consumer_heartbeat(
        &mut self,
        client: ClientId,
        f: &GroupInFlight,
        r: ConsumerGroupHeartbeatResponse,
    ) {
        let e = r.error_code;
        if matches!(f.req, Req::Leave) {
            return self.on_left(client);
        }
        if coordinator_error(e) {
            return self.member_coordinator_lost(client);
        }
        if e == code(ResponseError::FencedMemberEpoch) || e == code(ResponseError::UnknownMemberId)
        {
            if e == code(ResponseError::UnknownMemberId) {
                self.member_mut(client).member_id.clear();
            }
            self.member_lost(client, "fenced: rejoins");
            return self.backoff(client);
        }
        if e != 0 {
            return self.backoff(client);
        }
        let lease = self.lease();
        let assigned: Option<BTreeSet<Tp>> = r.assignment.as_ref().map(|a| {
            let ids = &self.groups().topic_ids;
            a.topic_partitions
                .iter()
                .filter_map(|t| ids.get(&t.topic_id).map(|name| (name.clone(), t)))
                .flat_map(|(name, t)| t.partitions.iter().map(move |p| (name.clone(), *p)))
                .collect()
        });
        if matches!(self.member(client).phase, Phase::Leaving { .. }) {
            return self.member_step(client);
        }
        let joined = self.member(client).phase == Phase::Unjoined;
        let previous = if joined {
            None
        } else {
            self.member(client).epoch_seen
        };
        if let Some(before) = previous {
            if r.member_epoch < before {
                let message = format!(
                    "member {client} ({}) went from epoch {before} back to {}",
                    self.member(client).member_id,
                    r.member_epoch
                );
                self.violation("member_epoch_monotonic", message);
            }
        }
        let m = self.member_mut(client);
        if let Some(id) = &r.member_id {
            m.member_id = id.to_string();
        }
        m.generation = r.member_epoch;
        m.epoch_seen = Some(r.member_epoch);
        if r.heartbeat_interval_ms > 0 {
            m.heartbeat_interval_ms = r.heartbeat_interval_ms as u64;
        }
        m.phase = Phase::Stable;
        m.revalidate = false;
        let since = m
            .unanswered_since
            .take()
            .map_or(f.sent_at, |s| s.min(f.sent_at));
        if let Some(assigned) = &assigned {
            let revoked: BTreeSet<Tp> = m.owned.difference(assigned).cloned().collect();
            m.revoke.extend(revoked);
            m.owned.extend(assigned.iter().cloned());
        }
        if !m.revoke.is_empty() {
            m.revocation_clock.get_or_insert(since);
        } else if f.sent_at >= m.revoked_at {
            m.revocation_clock = None;
        }
        let basis = m.revocation_clock.map_or(since, |c| c.min(since));
        m.lease_until = m.lease_until.max(basis + lease);
        if let Some(assigned) = assigned {
            let what = format!(
                "epoch {} assigned {}",
                r.member_epoch,
                assigned.iter().map(tp_name).collect::<Vec<_>>().join(",")
            );
            self.group_event(client, &what);
            self.groups_mut().stats.rebalances_seen += 1;
        }
        self.member_step(client);
    }

    // --- checkers ---------------------------------------------------------------------

    /// commit_generation: before a broker handles an OffsetCommit of a
    /// member, remember whether it holds the group at that generation
    /// (classic) or the member at that epoch (KIP-848).
    pub(super) fn note_group_request(
        &mut self,
        broker: BrokerId,
        conn: ConnId,
        header: &RequestHeader,
        body: &RequestKind,
    ) {
        let RequestKind::OffsetCommit(r) = body else {
            return;
        };
        let Some(g) = &self.groups else { return };
        let Some(client) = self.conns.get(&conn).and_then(|c| match c.origin {
            Origin::Client(c) => Some(c),
            Origin::Peer(_) => None,
        }) else {
            return;
        };
        if !g.members.contains(&client) {
            return;
        }
        let BrokerState::Up(node) = &self.brokers[broker].state else {
            return;
        };
        let group_id = r.group_id.0.to_string();
        let carried = r.generation_id_or_member_epoch;
        let verdict = match (node.group_view(&group_id), g.config.protocol) {
            (None, _) => Err(format!("broker {broker} does not coordinate the group")),
            (Some(v), GroupProtocol::Classic) => match v.generation {
                Some(current) if current == carried => Ok(()),
                other => Err(format!(
                    "the coordinator (broker {broker}) is at generation {other:?}"
                )),
            },
            (Some(v), GroupProtocol::Consumer) => match v.member_epochs.get(r.member_id.as_str()) {
                Some(current) if *current == carried => Ok(()),
                other => Err(format!(
                    "the coordinator (broker {broker}) holds the member at epoch {other:?}"
                )),
            },
        };
        let offsets = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    )
                })
            })
            .collect();
        let g = self.groups_mut();
        if g.commit_checks.len() >= COMMIT_CHECKS_MAX {
            g.commit_checks.clear();
        }
        let check = CommitCheck {
            verdict,
            carried,
            offsets,
        };
        g.commit_checks
            .insert((client, header.correlation_id), check);
    }

    /// commit_generation and monotonic_committed_offsets judge a member's
    /// OffsetCommit and OffsetFetch answers as the coordinator sends them:
    /// that is when they are true (the member may read them much later, or
    /// never).
    pub(super) fn note_group_response(
        &mut self,
        broker: BrokerId,
        conn: ConnId,
        correlation_id: i32,
        body: &ResponseKind,
    ) {
        let Some(g) = &self.groups else { return };
        let Some(client) = self.conns.get(&conn).and_then(|c| match c.origin {
            Origin::Client(c) => Some(c),
            Origin::Peer(_) => None,
        }) else {
            return;
        };
        if !g.members.contains(&client) {
            return;
        }
        match body {
            ResponseKind::OffsetCommit(r) => {
                let Some(check) = self
                    .groups_mut()
                    .commit_checks
                    .remove(&(client, correlation_id))
                else {
                    return;
                };
                for t in &r.topics {
                    for p in &t.partitions {
                        let tp: Tp = (t.name.0.to_string(), p.partition_index);
                        let offset = check
                            .offsets
                            .iter()
                            .find(|(x, _)| *x == tp)
                            .map(|(_, o)| *o);
                        let Some(offset) = offset.filter(|_| p.error_code == 0) else {
                            continue;
                        };
                        if let Err(why) = &check.verdict {
                            let message = format!(
                                "member {client} committed {}@{offset} with generation/epoch {}, accepted by broker {broker} although {why}",
                                tp_name(&tp),
                                check.carried
                            );
                            self.violation("commit_generation", message);
                        }
                        self.observe_committed(client, &tp, offset, "an accepted commit");
                    }
                }
            }
            ResponseKind::OffsetFetch(r) if r.error_code == 0 => {
                for t in &r.topics {
                    for p in &t.partitions {
                        if p.error_code == 0 {
                            let tp: Tp = (t.name.0.to_string(), p.partition_index);
                            self.observe_committed(client, &tp, p.committed_offset, "OffsetFetch");
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// monotonic_committed_offsets: what the group's committed offset for
    /// `tp` was seen to be (an accepted commit, an OffsetFetch answer).
    fn observe_committed(&mut self, client: ClientId, tp: &Tp, offset: i64, how: &str) {
        let g = self.groups_mut();
        let reset = g.resets.remove(tp);
        let seen = g.committed_seen.get(tp).copied();
        let Some(seen) = seen else {
            g.committed_seen.insert(tp.clone(), offset);
            return;
        };
        if offset >= seen {
            g.committed_seen.insert(tp.clone(), offset);
            return;
        }
        // Below what was seen: allowed after an explicit reset, or when the
        // higher value came from a commit whose answer was lost (its place
        // among the others is unknown).
        let excused = reset
            || g.commits_unknown
                .get(tp)
                .is_some_and(|unknown| unknown.contains(&seen));
        g.committed_seen.insert(tp.clone(), offset);
        if !excused {
            let message = format!(
                "{}: committed offset went back from {seen} to {offset} ({how}, member {client})",
                tp_name(tp)
            );
            self.violation("monotonic_committed_offsets", message);
        }
    }

    /// A member reset its position (OffsetOutOfRange): an explicit reset.
    pub(super) fn member_reset(&mut self, client: ClientId, tp: &Tp) {
        if let Some(g) = &mut self.groups {
            if g.members.contains(&client) {
                g.resets.insert(tp.clone());
            }
        }
    }

    /// no_double_ownership, members' view: no partition is owned by two
    /// members that may act on it (see the module comment).
    fn check_members_view(&mut self) {
        let Some(g) = &self.groups else { return };
        let now = self.now;
        let mut owner: BTreeMap<&Tp, ClientId> = BTreeMap::new();
        let mut found = None;
        'members: for &c in &g.members {
            let m = self.member(c);
            if !m.active(now) {
                continue;
            }
            for tp in &m.owned {
                if let Some(other) = owner.insert(tp, c) {
                    found = Some((tp.clone(), other, c));
                    break 'members;
                }
            }
        }
        if let Some((tp, a, b)) = found {
            let (ma, mb) = (self.member(a), self.member(b));
            let message = format!(
                "{} owned by member {a} ({} generation/epoch {}) and member {b} ({} generation/epoch {})",
                tp_name(&tp),
                ma.member_id,
                ma.generation,
                mb.member_id,
                mb.generation
            );
            self.violation("no_double_ownership", message);
        }
        self.check_group_stable();
    }

    /// no_double_ownership, coordinator's view (KIP-848): a partition
    /// held, or being given up, by two members at the coordinator on
    /// `broker`.
    pub(super) fn check_group_coordinator(&mut self, broker: BrokerId) {
        let Some(g) = &self.groups else { return };
        if g.config.protocol != GroupProtocol::Consumer {
            return;
        }
        let BrokerState::Up(node) = &self.brokers[broker].state else {
            return;
        };
        if let Some(why) = node.consumer_group_double_ownership() {
            let message = format!("coordinator broker {broker}: {why}");
            self.violation("no_double_ownership", message);
        }
    }

    /// Liveness: after the heal, when every member is stable: running, in
    /// the group at one generation / epoch, nothing being given up, and
    /// the partitions split among them, each known where to read from.
    fn check_group_stable(&mut self) {
        let Some(g) = &self.groups else { return };
        if !self.healed || g.stable_at.is_some() {
            return;
        }
        let now = self.now;
        let mut generations = BTreeSet::new();
        let mut covered: BTreeSet<&Tp> = BTreeSet::new();
        for &c in &g.members {
            let m = self.member(c);
            let settled = m.active(now)
                && m.phase == Phase::Stable
                && m.revoke.is_empty()
                && m.owned
                    .iter()
                    .all(|tp| m.consumer.positions.contains_key(tp));
            if !settled {
                return;
            }
            generations.insert(m.generation);
            for tp in &m.owned {
                if !covered.insert(tp) {
                    return;
                }
            }
        }
        if generations.len() != 1 || covered.len() != g.subscribed.len() {
            return;
        }
        let after_ms = (now - self.heal_at).as_millis() as u64;
        let g = self.groups_mut();
        g.stable_at = Some(now);
        g.stats.stable_after_heal_ms = Some(after_ms);
    }

    /// End of run: every group became stable within its bound after the
    /// heal (checker `liveness_group`).
    pub(super) fn groups_end_of_run(&mut self) {
        let Some(g) = &self.groups else { return };
        let bound = Duration::from_millis(g.config.stable_ms_max);
        match g.stable_at {
            Some(at) if at <= self.heal_at + bound => {}
            stable_at => {
                let summary: Vec<String> = g
                    .members
                    .iter()
                    .map(|&c| {
                        let m = self.member(c);
                        format!(
                            "member {c}: {:?} {:?} gen/epoch {} owns [{}]{}",
                            m.life,
                            m.phase,
                            m.generation,
                            m.owned.iter().map(tp_name).collect::<Vec<_>>().join(","),
                            if m.active(self.now) {
                                ""
                            } else {
                                " (inactive)"
                            }
                        )
                    })
                    .collect();
                let message = format!(
                    "group {} not stable within {} ms of the heal (stable at {:?} ms after); {}",
                    g.config.group_id,
                    g.config.stable_ms_max,
                    stable_at.map(|at| (at - self.heal_at).as_millis()),
                    summary.join("; ")
                );
                self.violation("liveness_group", message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> Tp {
        ("t".to_string(), p)
    }

    #[test]
    fn range_splits_contiguously_and_cooperative_holds_back_moves() {
        let parts: Vec<Tp> = (0..4).map(tp).collect();
        let members = vec![
            (
                "a".to_string(),
                BTreeSet::from([tp(0), tp(1), tp(2), tp(3)]),
            ),
            ("b".to_string(), BTreeSet::new()),
        ];
        let eager = classic_assign(&members, &parts, false, false);
        assert_eq!(eager["a"], BTreeSet::from([tp(0), tp(1)]));
        assert_eq!(eager["b"], BTreeSet::from([tp(2), tp(3)]));
        let coop = classic_assign(&members, &parts, true, false);
        assert_eq!(coop["a"], BTreeSet::from([tp(0), tp(1)]));
        assert!(coop["b"].is_empty(), "moves wait for the next generation");
        let buggy = classic_assign(&members, &parts, true, true);
        assert_eq!(buggy["b"], BTreeSet::from([tp(2), tp(3)]));
        // The next generation: a gave 2 and 3 up.
        let members = vec![
            ("a".to_string(), BTreeSet::from([tp(0), tp(1)])),
            ("b".to_string(), BTreeSet::new()),
        ];
        let coop = classic_assign(&members, &parts, true, false);
        assert_eq!(coop["b"], BTreeSet::from([tp(2), tp(3)]));
    }
}
