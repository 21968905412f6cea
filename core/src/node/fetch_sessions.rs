//! KIP-227 incremental fetch sessions: the broker's session cache.
//!
//! A client that fetches the same partitions over and over (a consumer
//! with hundreds of partitions on a broker, a follower) may ask for a
//! session with a full fetch (epoch 0). The broker remembers the
//! partitions and what it last answered for each; after that the client
//! names only partitions whose fetch position changed, and the answer
//! lists only partitions with something new (records, a high watermark or
//! log start that moved, an error). Each request carries the session's
//! epoch, which the broker bumps, so a lost or duplicated request is
//! caught (`INVALID_FETCH_SESSION_EPOCH`) rather than silently skipping
//! data; a session the broker no longer has (evicted, restarted) answers
//! `FETCH_SESSION_ID_NOT_FOUND` and the client starts over with a full
//! fetch. Kafka's `FetchSession.scala` is the reference for every rule
//! here, including the eviction order.
//!
//! The cache is bounded: `slots_max` sessions (Kafka's
//! `max.incremental.fetch.session.cache.slots`), each of at most
//! `PARTITIONS_PER_SESSION_MAX` partitions, `PARTITIONS_CACHED_MAX` in all
//! (Kafka bounds only the sessions; ~250 bytes a partition, so the
//! partitions bound the memory); a fetch that finds no room is served
//! without a session, which every client handles.

use crate::time::Instant;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::ResponseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// The session id of a fetch outside any session.
pub const INVALID_SESSION_ID: i32 = 0;
/// A full fetch that asks for a new session (closing the one it names).
pub const INITIAL_EPOCH: i32 = 0;
/// A full fetch that wants no session (closing the one it names).
pub const FINAL_EPOCH: i32 = -1;

/// Partitions one session may hold: an incremental fetch may add
/// partitions, so without a bound one client could grow the cache without
/// end. A full fetch naming more is served without a session.
pub const PARTITIONS_PER_SESSION_MAX: usize = 10_000;

/// Sessions a cache may be configured to hold.
pub const SLOTS_MAX: usize = 1_000_000;

/// Partitions all sessions may hold together (~50 MB at most).
pub const PARTITIONS_CACHED_MAX: usize = 200_000;

/// Kafka's `min.incremental.fetch.session.eviction.ms`: a session unused
/// this long may be evicted by anyone; a younger one only by a larger or
/// more privileged newcomer.
pub const SESSION_EVICTION_MS: u64 = 120_000;

/// The epoch after `epoch`: 1 follows `i32::MAX` (0 and -1 mean full
/// fetches).
pub fn next_epoch(epoch: i32) -> i32 {
    assert!(epoch >= 0, "only a session's epoch has a successor");
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// What a fetch is to the session cache, decided when it arrives and
/// carried to its answer (which may come later, after a long poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchContext {
    /// No session: the answer lists every partition asked, session id 0.
    Sessionless,
    /// A full fetch that asks for a session: made, if there is room, when
    /// the answer is built, from the partitions it lists.
    Full,
    /// An incremental fetch of session `id`, whose epoch became `epoch`
    /// on arrival: the answer is judged against the session then.
    Incremental { id: i32, epoch: i32 },
}

/// A partition as a session names it: by topic id from Fetch v13 on, by
/// name before (the other field is nil/empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PartitionKey {
    topic_id: Uuid,
    topic: TopicName,
    partition: i32,
}

impl PartitionKey {
    fn new(by_id: bool, topic_id: Uuid, topic: &TopicName, partition: i32) -> PartitionKey {
        if by_id {
            PartitionKey {
                topic_id,
                topic: TopicName::default(),
                partition,
            }
        } else {
            PartitionKey {
                topic_id: Uuid::nil(),
                topic: topic.clone(),
                partition,
            }
        }
    }
}

/// One partition of a session: the fetch the client last named for it,
/// and what the broker last answered (-1: answer next time whatever).
#[derive(Debug, Clone)]
struct CachedPartition {
    key: PartitionKey,
    fetch: FetchPartition,
    high_watermark: i64,
    log_start_offset: i64,
}

impl CachedPartition {
    /// Whether an answer for this partition must be sent, noting what it
    /// says (Kafka's `maybeUpdateResponseData`).
    fn must_answer(&mut self, pd: &PartitionData) -> bool {
        let mut must = pd.records.as_ref().is_some_and(|r| !r.is_empty());
        if self.high_watermark != pd.high_watermark {
            self.high_watermark = pd.high_watermark;
            must = true;
        }
        if self.log_start_offset != pd.log_start_offset {
            self.log_start_offset = pd.log_start_offset;
            must = true;
        }
        must |= pd.preferred_read_replica.0 >= 0;
        must |= pd.diverging_epoch.epoch >= 0;
        if pd.error_code != 0 {
            // When the error clears, the partition is answered again.
            self.high_watermark = -1;
            must = true;
        }
        must
    }
}

#[derive(Debug)]
struct Session {
    epoch: i32,
    uses_topic_ids: bool,
    created: Instant,
    last_used: Instant,
    /// Where each partition stays while it is in the session: the index
    /// points here, and only forgetting partitions moves them.
    partitions: Vec<CachedPartition>,
    /// Positions in `partitions`, in the order they are read: partitions
    /// answered go to the back, so under a fetch's byte limit every
    /// partition gets its turn. (Rotating this, not `partitions`, keeps
    /// the index as it is: rebuilding it on every answer was 2% of a
    /// large cluster's simulation.)
    order: Vec<u32>,
    /// Key -> position in `partitions`.
    index: BTreeMap<PartitionKey, usize>,
}

impl Session {
    fn empty(uses_topic_ids: bool, now: Instant) -> Session {
        Session {
            epoch: next_epoch(INITIAL_EPOCH),
            uses_topic_ids,
            created: now,
            last_used: now,
            partitions: Vec::new(),
            order: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    /// Adds a partition at the back of the read order; false if the
    /// session holds it already.
    fn push(&mut self, cached: CachedPartition) -> bool {
        let at = self.partitions.len();
        if self.index.insert(cached.key.clone(), at).is_some() {
            return false;
        }
        self.order
            .push(u32::try_from(at).expect("bounded by PARTITIONS_PER_SESSION_MAX"));
        self.partitions.push(cached);
        true
    }

    /// The partitions in the order they are read.
    fn ordered(&self) -> impl Iterator<Item = &CachedPartition> {
        self.order.iter().map(|&i| &self.partitions[i as usize])
    }

    /// Keeps only the partitions the index still holds, in the same read
    /// order, and points the index at their new positions.
    fn drop_unindexed(&mut self) {
        let mut slots: Vec<Option<CachedPartition>> = std::mem::take(&mut self.partitions)
            .into_iter()
            .map(Some)
            .collect();
        let kept: Vec<CachedPartition> = std::mem::take(&mut self.order)
            .into_iter()
            .map(|i| slots[i as usize].take().expect("each position once"))
            .filter(|cached| self.index.contains_key(&cached.key))
            .collect();
        self.index.clear();
        for cached in kept {
            let pushed = self.push(cached);
            assert!(pushed, "keys are unique");
        }
    }

    /// Applies an incremental fetch: partitions named are added or take
    /// the new fetch position, forgotten ones leave.
    fn update(&mut self, request: &FetchRequest) {
        let by_id = self.uses_topic_ids;
        for topic in &request.topics {
            for fp in &topic.partitions {
                let key = PartitionKey::new(by_id, topic.topic_id, &topic.topic, fp.partition);
                match self.index.get(&key) {
                    Some(&i) => self.partitions[i].fetch = fp.clone(),
                    None => {
                        let added = self.push(CachedPartition {
                            key,
                            fetch: fp.clone(),
                            high_watermark: -1,
                            log_start_offset: -1,
                        });
                        debug_assert!(added, "not in the index");
                    }
                }
            }
        }
        let mut forgot = false;
        for topic in &request.forgotten_topics_data {
            for &partition in &topic.partitions {
                let key = PartitionKey::new(by_id, topic.topic_id, &topic.topic, partition);
                forgot |= self.index.remove(&key).is_some();
            }
        }
        if forgot {
            // Rebuilt once per fetch that forgets something; only the
            // index knows which are gone.
            self.drop_unindexed();
        }
    }

    /// The request this session stands for: every partition, in order,
    /// with the top-level fields of `arrived`. Consecutive partitions of
    /// a topic share an entry (a topic may appear more than once after
    /// the rotation, as in Kafka's answers).
    fn as_request(&self, mut arrived: FetchRequest) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for p in self.ordered() {
            let same = topics
                .last()
                .is_some_and(|t| t.topic_id == p.key.topic_id && t.topic == p.key.topic);
            if !same {
                topics.push(
                    FetchTopic::default()
                        .with_topic_id(p.key.topic_id)
                        .with_topic(p.key.topic.clone()),
                );
            }
            let topic = topics.last_mut().expect("pushed above");
            topic.partitions.push(p.fetch.clone());
        }
        arrived.topics = topics;
        arrived.forgotten_topics_data.clear();
        arrived
    }

    /// Keeps in `response` only what must be answered, and moves those
    /// partitions to the back of the session. `response` was read from
    /// `as_request` at this epoch, so it lists the session's partitions in
    /// the session's order: they are matched by position, not looked up.
    /// The positions `unread` marks were left out of it (`unread` is
    /// empty, or one flag per partition).
    fn filter(&mut self, response: &mut FetchResponse, unread: &[bool]) -> usize {
        assert!(unread.is_empty() || unread.len() == self.partitions.len());
        let is_unread = |i: usize| unread.get(i).copied().unwrap_or(false);
        let by_id = self.uses_topic_ids;
        let mut answered = vec![false; self.partitions.len()];
        let mut next = 0;
        for topic in &mut response.responses {
            let (id, name) = (topic.topic_id, &topic.topic);
            topic.partitions.retain(|pd| {
                while is_unread(next) {
                    next += 1;
                }
                let i = next;
                next += 1;
                let cached = &mut self.partitions[self.order[i] as usize];
                assert!(
                    cached.key.partition == pd.partition_index
                        && if by_id {
                            cached.key.topic_id == id
                        } else {
                            cached.key.topic == *name
                        },
                    "an answer lists its session's partitions in order"
                );
                let must = cached.must_answer(pd);
                answered[i] = must;
                must
            });
        }
        while is_unread(next) {
            next += 1;
        }
        assert_eq!(
            next,
            self.partitions.len(),
            "an answer lists every partition read"
        );
        response.responses.retain(|t| !t.partitions.is_empty());
        if answered.iter().any(|a| *a) {
            let mut rest = Vec::with_capacity(self.order.len());
            let mut back = Vec::new();
            for (&p, a) in self.order.iter().zip(answered) {
                if a {
                    back.push(p);
                } else {
                    rest.push(p);
                }
            }
            rest.append(&mut back);
            self.order = rest;
        }
        unread.iter().filter(|u| **u).count()
    }

    fn check_invariants(&self, id: i32) {
        assert!(id > 0, "session ids are positive");
        assert!(
            self.epoch > 0,
            "session {id}: epoch {} is not a session's",
            self.epoch
        );
        assert!(
            !self.partitions.is_empty(),
            "session {id}: an empty session is closed"
        );
        assert!(self.partitions.len() <= PARTITIONS_PER_SESSION_MAX);
        assert!(self.created <= self.last_used);
        assert_eq!(
            self.index.len(),
            self.partitions.len(),
            "session {id}: keys are unique"
        );
        for (key, &i) in &self.index {
            assert_eq!(
                &self.partitions[i].key, key,
                "session {id}: index points right"
            );
        }
        let mut seen = vec![false; self.partitions.len()];
        for &i in &self.order {
            assert!(
                !std::mem::replace(&mut seen[i as usize], true),
                "session {id}: each partition read once"
            );
        }
        assert_eq!(self.order.len(), self.partitions.len());
    }
}

/// The cache of a broker's fetch sessions.
#[derive(Debug)]
pub struct FetchSessions {
    sessions: BTreeMap<i32, Session>,
    slots_max: usize,
    /// Session ids are random, as Kafka's: a client holding an id from
    /// before a restart must not land in someone else's new session.
    rng: ChaCha8Rng,
    /// The partitions of every session, counted as they come and go.
    partitions_cached: usize,
    evictions: u64,
    /// Partitions of incremental fetches left unread because nothing about
    /// them changed since they were last answered.
    partitions_unread: u64,
}

impl FetchSessions {
    pub fn new(slots_max: usize, rng_seed: u64) -> FetchSessions {
        assert!(slots_max <= SLOTS_MAX, "validated with the node's config");
        FetchSessions {
            sessions: BTreeMap::new(),
            slots_max,
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            partitions_cached: 0,
            evictions: 0,
            partitions_unread: 0,
        }
    }

    // --- getters -----------------------------------------------------------

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn partitions_cached(&self) -> usize {
        self.partitions_cached
    }

    #[cfg(test)]
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Partitions of incremental fetches that were answered unread: their
    /// answer would have been dropped as unchanged.
    pub fn partitions_unread(&self) -> u64 {
        self.partitions_unread
    }

    /// What the session of an incremental fetch last answered for each of
    /// its partitions, in the order of its request (`session_request`):
    /// (high watermark, log start), -1 where the next answer lists it
    /// whatever it says. Nothing (`out` left empty) for any other fetch,
    /// or a session that moved on, whose answer is an error anyway.
    pub(crate) fn answered_offsets(&self, context: FetchContext, out: &mut Vec<(i64, i64)>) {
        out.clear();
        let FetchContext::Incremental { id, epoch } = context else {
            return;
        };
        if let Some(session) = self.sessions.get(&id).filter(|s| s.epoch == epoch) {
            out.extend(
                session
                    .ordered()
                    .map(|p| (p.high_watermark, p.log_start_offset)),
            );
        }
    }

    pub fn check_invariants(&self) {
        assert!(
            self.sessions.len() <= self.slots_max,
            "sessions over their slots"
        );
        for (id, s) in &self.sessions {
            s.check_invariants(*id);
        }
        assert_eq!(
            self.partitions_cached,
            self.sessions
                .values()
                .map(|s| s.partitions.len())
                .sum::<usize>(),
            "the count of cached partitions follows the sessions"
        );
        assert!(self.partitions_cached <= PARTITIONS_CACHED_MAX);
    }

    fn remove_session(&mut self, id: i32) {
        if let Some(session) = self.sessions.remove(&id) {
            self.partitions_cached -= session.partitions.len();
        }
    }

    // --- inputs ------------------------------------------------------------

    /// Decides what a fetch that just arrived is (Kafka's
    /// `FetchManager.newContext`): a full fetch closes the session it
    /// names; an incremental one must name a live session at its epoch,
    /// and updates it.
    pub(crate) fn handle_fetch(
        &mut self,
        request: &FetchRequest,
        version: i16,
        now: Instant,
    ) -> Result<FetchContext, ResponseError> {
        let (id, epoch) = (request.session_id, request.session_epoch);
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if id != INVALID_SESSION_ID {
                self.remove_session(id);
            }
            if epoch == FINAL_EPOCH || self.slots_max == 0 {
                return Ok(FetchContext::Sessionless);
            }
            return Ok(FetchContext::Full);
        }
        if epoch < FINAL_EPOCH {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(ResponseError::FetchSessionIdNotFound)?;
        if session.epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        if session.uses_topic_ids != (version >= super::handlers::fetch::FETCH_TOPIC_ID_VERSION_MIN)
        {
            return Err(ResponseError::FetchSessionTopicIdError);
        }
        let before = session.partitions.len();
        session.update(request);
        let after = session.partitions.len();
        self.partitions_cached = self.partitions_cached - before + after;
        if after == 0 {
            self.remove_session(id);
            return Ok(FetchContext::Sessionless);
        }
        if after > PARTITIONS_PER_SESSION_MAX || self.partitions_cached > PARTITIONS_CACHED_MAX {
            // The client starts over with a full fetch, served without a
            // session if there is no room for it.
            self.remove_session(id);
            return Err(ResponseError::FetchSessionIdNotFound);
        }
        let session = self.sessions.get_mut(&id).expect("updated above");
        session.last_used = now;
        session.epoch = next_epoch(session.epoch);
        Ok(FetchContext::Incremental {
            id,
            epoch: session.epoch,
        })
    }

    /// The request an incremental fetch stands for: every partition of
    /// its session.
    pub(crate) fn session_request(&self, id: i32, arrived: FetchRequest) -> FetchRequest {
        let session = self
            .sessions
            .get(&id)
            .expect("the context was made for a live session");
        session.as_request(arrived)
    }

    /// Turns the answer `response` read for `request` into what this
    /// fetch's context answers: a full fetch's makes a session if there is
    /// room (and lists everything); an incremental one's lists only what
    /// changed. `unread` flags the session's partitions the read left out
    /// as unchanged (see `answered_offsets`): empty for any other fetch.
    pub(crate) fn answer(
        &mut self,
        context: FetchContext,
        request: &FetchRequest,
        version: i16,
        response: &mut FetchResponse,
        unread: &[bool],
        now: Instant,
    ) {
        assert!(
            unread.is_empty() || matches!(context, FetchContext::Incremental { .. }),
            "only an incremental fetch leaves partitions unread"
        );
        response.session_id = INVALID_SESSION_ID;
        match context {
            FetchContext::Sessionless => {}
            FetchContext::Full => {
                let by_id = version >= super::handlers::fetch::FETCH_TOPIC_ID_VERSION_MIN;
                if let Some(session) = new_session(request, response, by_id, now) {
                    if let Some(id) = self.make_room_and_insert(session, now) {
                        response.session_id = id;
                    }
                }
            }
            FetchContext::Incremental { id, epoch } => match self.sessions.get_mut(&id) {
                Some(session) if session.epoch == epoch => {
                    self.partitions_unread += session.filter(response, unread) as u64;
                    response.session_id = id;
                }
                // Closed, evicted or used again while this fetch waited:
                // what the session held is no longer known, so nothing is
                // answered and the client starts over.
                gone => {
                    let error = if gone.is_some() {
                        ResponseError::InvalidFetchSessionEpoch
                    } else {
                        ResponseError::FetchSessionIdNotFound
                    };
                    *response = FetchResponse::default()
                        .with_throttle_time_ms(response.throttle_time_ms)
                        .with_error_code(error.code());
                }
            },
        }
    }

    /// Inserts `session` under a fresh id if a slot and room for its
    /// partitions are free or can be freed by one eviction (Kafka's
    /// `maybeCreateSession` and `tryEvict`).
    fn make_room_and_insert(&mut self, session: Session, now: Instant) -> Option<i32> {
        let n = session.partitions.len();
        if self.sessions.len() >= self.slots_max
            || self.partitions_cached + n > PARTITIONS_CACHED_MAX
        {
            let victim = self.eviction_victim(&session, now)?;
            self.remove_session(victim);
            self.evictions += 1;
        }
        if self.partitions_cached + n > PARTITIONS_CACHED_MAX {
            return None;
        }
        // At most SLOTS_MAX of the 2^31 ids are taken: a draw collides
        // with odds under 1 in 2,000, and 64 collisions in a row are
        // beyond chance.
        let id = (0..64)
            .map(|_| self.rng.gen_range(1..i32::MAX))
            .find(|id| !self.sessions.contains_key(id))
            .expect("a free session id among 64 draws");
        self.partitions_cached += n;
        self.sessions.insert(id, session);
        Some(id)
    }

    /// Which session a newcomer may take the place of: the least recently
    /// used if it is stale; else the one with the fewest partitions of
    /// those old enough, if the newcomer has at least as many. (Kafka
    /// also ranks followers' sessions above consumers'; followers here
    /// fetch without sessions.)
    fn eviction_victim(&self, new: &Session, now: Instant) -> Option<i32> {
        let eviction = Duration::from_millis(SESSION_EVICTION_MS);
        let old = |s: &Session| now.saturating_duration_since(s.created) > eviction;
        let (lru_id, lru) = self
            .sessions
            .iter()
            .min_by_key(|(id, s)| (s.last_used, **id))?;
        if now.saturating_duration_since(lru.last_used) > eviction {
            return Some(*lru_id);
        }
        let (id, victim) = self
            .sessions
            .iter()
            .filter(|(_, s)| old(s))
            .min_by_key(|(id, s)| (s.partitions.len(), **id))?;
        (new.partitions.len() >= victim.partitions.len()).then_some(*id)
    }
}

/// A session holding every partition a full fetch named, with what its
/// answer said; none if the fetch named none, too many, or one twice.
fn new_session(
    request: &FetchRequest,
    response: &FetchResponse,
    by_id: bool,
    now: Instant,
) -> Option<Session> {
    let answers: BTreeMap<PartitionKey, &PartitionData> = response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |pd| {
                (
                    PartitionKey::new(by_id, t.topic_id, &t.topic, pd.partition_index),
                    pd,
                )
            })
        })
        .collect();
    let mut session = Session::empty(by_id, now);
    for topic in &request.topics {
        for fp in &topic.partitions {
            let key = PartitionKey::new(by_id, topic.topic_id, &topic.topic, fp.partition);
            let answer = answers.get(&key)?;
            if session.partitions.len() >= PARTITIONS_PER_SESSION_MAX {
                return None;
            }
            let mut cached = CachedPartition {
                key,
                fetch: fp.clone(),
                high_watermark: -1,
                log_start_offset: -1,
            };
            cached.must_answer(answer);
            if !session.push(cached) {
                return None;
            }
        }
    }
    (!session.partitions.is_empty()).then_some(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_request::ForgottenTopic;
    use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
    use kafka_protocol::protocol::StrBytes;

    const V: i16 = 12; // topics by name

    fn topic(name: &str) -> TopicName {
        TopicName(StrBytes::from_string(name.to_string()))
    }

    fn fetch(id: i32, epoch: i32, partitions: &[(i32, i64)]) -> FetchRequest {
        let partitions = partitions
            .iter()
            .map(|(p, offset)| {
                FetchPartition::default()
                    .with_partition(*p)
                    .with_fetch_offset(*offset)
            })
            .collect();
        FetchRequest::default()
            .with_session_id(id)
            .with_session_epoch(epoch)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic("t"))
                .with_partitions(partitions)])
    }

    /// What a read of `request` says: per partition (hw, record bytes).
    fn read(request: &FetchRequest, state: &BTreeMap<i32, (i64, usize)>) -> FetchResponse {
        let mut response = FetchResponse::default();
        for t in &request.topics {
            let mut tr = FetchableTopicResponse::default().with_topic(t.topic.clone());
            for fp in &t.partitions {
                let (hw, bytes) = state[&fp.partition];
                tr.partitions.push(
                    PartitionData::default()
                        .with_partition_index(fp.partition)
                        .with_high_watermark(hw)
                        .with_log_start_offset(0)
                        .with_preferred_read_replica((-1).into())
                        .with_records(Some(Bytes::from(vec![0u8; bytes]))),
                );
            }
            response.responses.push(tr);
        }
        response
    }

    fn listed(response: &FetchResponse) -> Vec<i32> {
        response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
            .collect()
    }

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    /// One fetch through the cache: arrival, read, answer.
    fn round(
        cache: &mut FetchSessions,
        request: &FetchRequest,
        state: &BTreeMap<i32, (i64, usize)>,
        now: Instant,
    ) -> Result<FetchResponse, ResponseError> {
        let context = cache.handle_fetch(request, V, now)?;
        let read_request = match context {
            FetchContext::Incremental { id, .. } => cache.session_request(id, request.clone()),
            _ => request.clone(),
        };
        let mut response = read(&read_request, state);
        cache.answer(context, &read_request, V, &mut response, &[], now);
        cache.check_invariants();
        Ok(response)
    }

    #[test]
    fn a_session_answers_only_what_changed_and_reads_what_it_holds() {
        let mut cache = FetchSessions::new(10, 1);
        let mut state: BTreeMap<i32, (i64, usize)> = [(0, (5, 0)), (1, (7, 0)), (2, (9, 0))].into();
        let full = round(
            &mut cache,
            &fetch(0, 0, &[(0, 5), (1, 7), (2, 9)]),
            &state,
            at(0),
        )
        .unwrap();
        let id = full.session_id;
        assert!(id > 0, "a full fetch at epoch 0 makes a session");
        assert_eq!(
            listed(&full),
            vec![0, 1, 2],
            "a full answer lists everything"
        );
        // Nothing moved: an incremental fetch naming nothing answers nothing.
        let quiet = round(&mut cache, &fetch(id, 1, &[]), &state, at(1)).unwrap();
        assert_eq!((quiet.session_id, listed(&quiet)), (id, vec![]));
        // Partition 1's high watermark moves, 2 has records: both answered,
        // though the fetch named neither.
        state.insert(1, (8, 0));
        state.insert(2, (9, 100));
        let news = round(&mut cache, &fetch(id, 2, &[]), &state, at(2)).unwrap();
        assert_eq!(listed(&news), vec![1, 2]);
        // Answered partitions went to the back: 0 is read first now.
        let session = &cache.sessions[&id];
        let order: Vec<i32> = session.ordered().map(|p| p.key.partition).collect();
        assert_eq!(order, vec![0, 1, 2]);
        state.insert(0, (6, 10));
        let first = round(&mut cache, &fetch(id, 3, &[(2, 10)]), &state, at(3)).unwrap();
        assert_eq!(listed(&first), vec![0, 2], "records in 0 and in 2");
        let order: Vec<i32> = cache.sessions[&id]
            .ordered()
            .map(|p| p.key.partition)
            .collect();
        assert_eq!(
            order,
            vec![1, 0, 2],
            "the answered ones move back, in order"
        );
        assert_eq!(
            cache.sessions[&id]
                .ordered()
                .nth(2)
                .unwrap()
                .fetch
                .fetch_offset,
            10,
            "the new position named is kept"
        );
    }

    #[test]
    fn a_wrong_epoch_or_unknown_session_is_an_error_and_a_full_fetch_closes_it() {
        let mut cache = FetchSessions::new(10, 1);
        let state: BTreeMap<i32, (i64, usize)> = [(0, (5, 0))].into();
        let id = round(&mut cache, &fetch(0, 0, &[(0, 5)]), &state, at(0))
            .unwrap()
            .session_id;
        assert_eq!(
            round(&mut cache, &fetch(id, 2, &[]), &state, at(1)).unwrap_err(),
            ResponseError::InvalidFetchSessionEpoch
        );
        assert_eq!(
            round(
                &mut cache,
                &fetch(id.wrapping_add(1).max(1), 1, &[]),
                &state,
                at(1)
            )
            .unwrap_err(),
            ResponseError::FetchSessionIdNotFound
        );
        // The epoch error did not use the session up: epoch 1 still works.
        assert!(round(&mut cache, &fetch(id, 1, &[]), &state, at(1)).is_ok());
        // A full fetch naming the session at the final epoch closes it
        // and makes none.
        let closed = round(&mut cache, &fetch(id, -1, &[(0, 5)]), &state, at(2)).unwrap();
        assert_eq!((closed.session_id, listed(&closed)), (0, vec![0]));
        assert!(cache.is_empty());
        assert_eq!(
            round(&mut cache, &fetch(id, 2, &[]), &state, at(3)).unwrap_err(),
            ResponseError::FetchSessionIdNotFound
        );
    }

    #[test]
    fn forgetting_every_partition_closes_the_session() {
        let mut cache = FetchSessions::new(10, 1);
        let state: BTreeMap<i32, (i64, usize)> = [(0, (5, 0)), (1, (5, 0))].into();
        let id = round(&mut cache, &fetch(0, 0, &[(0, 5), (1, 5)]), &state, at(0))
            .unwrap()
            .session_id;
        let forget = |p: Vec<i32>| {
            ForgottenTopic::default()
                .with_topic(topic("t"))
                .with_partitions(p)
        };
        let mut r = fetch(id, 1, &[]);
        r.forgotten_topics_data = vec![forget(vec![0])];
        round(&mut cache, &r, &state, at(1)).unwrap();
        assert_eq!(cache.partitions_cached(), 1);
        let mut r = fetch(id, 2, &[]);
        r.forgotten_topics_data = vec![forget(vec![1])];
        let last = round(&mut cache, &r, &state, at(2)).unwrap();
        assert_eq!(last.session_id, 0, "an emptied session is closed");
        assert!(cache.is_empty());
    }

    /// Forgetting a partition after answers rotated the read order keeps
    /// the others in that order, and the index (checked by every round's
    /// `check_invariants`) follows them to their new places.
    #[test]
    fn forgetting_a_partition_keeps_the_read_order_of_the_rest() {
        let mut cache = FetchSessions::new(10, 1);
        let mut state: BTreeMap<i32, (i64, usize)> = (0..4).map(|p| (p, (5, 0))).collect();
        let all: Vec<(i32, i64)> = (0..4).map(|p| (p, 5)).collect();
        let id = round(&mut cache, &fetch(0, 0, &all), &state, at(0))
            .unwrap()
            .session_id;
        let order = |cache: &FetchSessions| -> Vec<i32> {
            cache.sessions[&id]
                .ordered()
                .map(|p| p.key.partition)
                .collect()
        };
        state.insert(1, (5, 10));
        let news = round(&mut cache, &fetch(id, 1, &[]), &state, at(1)).unwrap();
        assert_eq!(listed(&news), vec![1]);
        assert_eq!(order(&cache), vec![0, 2, 3, 1]);
        let mut r = fetch(id, 2, &[(3, 6)]);
        r.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(topic("t"))
            .with_partitions(vec![2])];
        state.insert(1, (5, 0));
        round(&mut cache, &r, &state, at(2)).unwrap();
        assert_eq!(order(&cache), vec![0, 3, 1]);
        assert_eq!(cache.partitions_cached(), 3);
        let session = &cache.sessions[&id];
        let three = &session.partitions
            [session.index[&PartitionKey::new(false, Uuid::nil(), &topic("t"), 3)]];
        assert_eq!(
            three.fetch.fetch_offset, 6,
            "the index finds 3 where it moved"
        );
        state.insert(0, (6, 0));
        let moved = round(&mut cache, &fetch(id, 3, &[]), &state, at(3)).unwrap();
        assert_eq!(listed(&moved), vec![0]);
        assert_eq!(order(&cache), vec![3, 1, 0]);
    }

    #[test]
    fn an_answer_after_the_session_moved_on_says_so_rather_than_hide_data() {
        let mut cache = FetchSessions::new(10, 1);
        let state: BTreeMap<i32, (i64, usize)> = [(0, (5, 0))].into();
        let id = round(&mut cache, &fetch(0, 0, &[(0, 5)]), &state, at(0))
            .unwrap()
            .session_id;
        // A fetch parks (its context taken), then the client, having
        // given up on it, fetches again at the next epoch.
        let parked = cache.handle_fetch(&fetch(id, 1, &[]), V, at(1)).unwrap();
        round(&mut cache, &fetch(id, 2, &[]), &state, at(2)).unwrap();
        let request = cache.session_request(id, fetch(id, 1, &[]));
        let mut late = read(&request, &state);
        cache.answer(parked, &request, V, &mut late, &[], at(3));
        assert_eq!(
            late.error_code,
            ResponseError::InvalidFetchSessionEpoch.code()
        );
        assert!(late.responses.is_empty());
    }

    #[test]
    fn a_full_cache_evicts_only_the_stale_or_the_less_valuable() {
        let mut cache = FetchSessions::new(2, 1);
        let state: BTreeMap<i32, (i64, usize)> = (0..4).map(|p| (p, (5, 0))).collect();
        let small = round(&mut cache, &fetch(0, 0, &[(0, 5)]), &state, at(0))
            .unwrap()
            .session_id;
        let big = round(
            &mut cache,
            &fetch(0, 0, &[(0, 5), (1, 5), (2, 5)]),
            &state,
            at(0),
        )
        .unwrap()
        .session_id;
        assert!(small > 0 && big > 0 && small != big);
        // Both young: a newcomer gets no session.
        let none = round(
            &mut cache,
            &fetch(0, 0, &[(0, 5), (1, 5), (2, 5), (3, 5)]),
            &state,
            at(1),
        )
        .unwrap();
        assert_eq!(none.session_id, 0);
        assert_eq!(
            listed(&none),
            vec![0, 1, 2, 3],
            "served in full without one"
        );
        // Keep `big` in use; once both are old, a newcomer larger than
        // `small` takes its slot, one smaller takes none.
        let later = at(SESSION_EVICTION_MS + 10);
        round(&mut cache, &fetch(big, 1, &[]), &state, later).unwrap();
        round(&mut cache, &fetch(small, 1, &[]), &state, later).unwrap();
        let two = round(&mut cache, &fetch(0, 0, &[(0, 5), (1, 5)]), &state, later).unwrap();
        assert!(two.session_id > 0);
        assert!(!cache.sessions.contains_key(&small) && cache.sessions.contains_key(&big));
        assert_eq!(cache.evictions(), 1);
        // Unused past the eviction time, a session goes to anyone.
        let much_later = at(3 * SESSION_EVICTION_MS);
        let tiny = round(&mut cache, &fetch(0, 0, &[(3, 5)]), &state, much_later).unwrap();
        assert!(tiny.session_id > 0);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.evictions(), 2);
    }

    #[test]
    fn the_partitions_all_sessions_hold_are_bounded_too() {
        let mut cache = FetchSessions::new(1_000, 1);
        let n = PARTITIONS_PER_SESSION_MAX as i32;
        let state: BTreeMap<i32, (i64, usize)> = (0..=n).map(|p| (p, (5, 0))).collect();
        let offsets: Vec<(i32, i64)> = (0..n).map(|p| (p, 5)).collect();
        let full_sessions = PARTITIONS_CACHED_MAX / PARTITIONS_PER_SESSION_MAX;
        for _ in 0..full_sessions {
            assert!(
                round(&mut cache, &fetch(0, 0, &offsets), &state, at(0))
                    .unwrap()
                    .session_id
                    > 0
            );
        }
        assert_eq!(cache.partitions_cached(), PARTITIONS_CACHED_MAX);
        // Slots are free, partitions are not (and every session is young).
        let refused = round(&mut cache, &fetch(0, 0, &[(0, 5)]), &state, at(1)).unwrap();
        assert_eq!(refused.session_id, 0);
        // A session growing past its bound is closed, and says so.
        let mut big = FetchSessions::new(10, 1);
        let id = round(&mut big, &fetch(0, 0, &offsets), &state, at(0))
            .unwrap()
            .session_id;
        assert_eq!(
            round(&mut big, &fetch(id, 1, &[(n, 5)]), &state, at(1)).unwrap_err(),
            ResponseError::FetchSessionIdNotFound
        );
        assert_eq!(big.partitions_cached(), 0);
    }
}
