//! The classic group coordinator driven through the node's sans-IO
//! boundary: requests in, responses and flushes out, time advanced by hand.
//! Each member talks on its own connection, as real clients do (a parked
//! JoinGroup holds back later responses of its connection).

use bytes::Bytes;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartition;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use seedlog_core::batch::decode_records_for_test;
use seedlog_core::group::records::{decode_key, partition_for, RecordKey};
use seedlog_core::node::NodeConfig;
use seedlog_core::storage::MemoryStorage;

const ADMIN: u64 = 1;
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 20_000;

mod support;

use support::Harness;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(config())
    }

    fn with_config(config: NodeConfig) -> Harness {
        Harness::start(config, MemoryStorage::new())
    }

    fn send(&mut self, connection: u64, key: ApiKey, version: i16, body: RequestKind) -> i32 {
        let id = self.send_on(connection, key, version, body);
        assert!(
            self.closed.is_empty(),
            "the node closed connection(s) {:?}",
            self.closed
        );
        id
    }

    fn request(
        &mut self,
        connection: u64,
        key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> ResponseKind {
        let id = self.send(connection, key, version, body);
        self.take(id)
            .unwrap_or_else(|| panic!("no response to {key:?}"))
    }

    fn create_topic(&mut self, name: &str, partitions: i32) {
        let topic = CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1);
        let ResponseKind::CreateTopics(r) = self.request(
            ADMIN,
            ApiKey::CreateTopics,
            7,
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic])),
        ) else {
            panic!()
        };
        assert_eq!(r.topics[0].error_code, 0);
    }

    // --- group requests -------------------------------------------------------

    fn send_join(
        &mut self,
        conn: u64,
        group: &str,
        member: &str,
        instance: Option<&str>,
        topics: &[&str],
    ) -> i32 {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(SESSION_MS)
            .with_rebalance_timeout_ms(REBALANCE_MS)
            .with_member_id(s(member))
            .with_group_instance_id(instance.map(s))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription(topics))]);
        self.send(conn, ApiKey::JoinGroup, 9, RequestKind::JoinGroup(request))
    }

    fn join_response(&mut self, id: i32) -> JoinGroupResponse {
        match self.take(id) {
            Some(ResponseKind::JoinGroup(r)) => r,
            other => panic!("expected a JoinGroup response, got {other:?}"),
        }
    }

    /// The v4+ dance: MEMBER_ID_REQUIRED, then the join with that id (parked
    /// or answered); returns the member id and the second request's id.
    fn join_new(&mut self, conn: u64, group: &str, topics: &[&str]) -> (String, i32) {
        let first = self.send_join(conn, group, "", None, topics);
        let r = self.join_response(first);
        assert_eq!(r.error_code, code(ResponseError::MemberIdRequired));
        assert!(!r.member_id.is_empty());
        let member = r.member_id.to_string();
        let second = self.send_join(conn, group, &member, None, topics);
        (member, second)
    }

    fn send_sync(
        &mut self,
        conn: u64,
        group: &str,
        generation: i32,
        member: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> i32 {
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(&m))
                            .with_assignment(a)
                    })
                    .collect(),
            );
        self.send(conn, ApiKey::SyncGroup, 5, RequestKind::SyncGroup(request))
    }

    fn sync_response(&mut self, id: i32) -> SyncGroupResponse {
        match self.take(id) {
            Some(ResponseKind::SyncGroup(r)) => r,
            other => panic!("expected a SyncGroup response, got {other:?}"),
        }
    }

    fn heartbeat(
        &mut self,
        conn: u64,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
    ) -> i16 {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_group_instance_id(instance.map(s));
        match self.request(conn, ApiKey::Heartbeat, 4, RequestKind::Heartbeat(request)) {
            ResponseKind::Heartbeat(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    }

    fn leave(
        &mut self,
        conn: u64,
        group: &str,
        members: &[(&str, Option<&str>)],
    ) -> LeaveGroupResponse {
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_members(
                members
                    .iter()
                    .map(|(m, i)| {
                        MemberIdentity::default()
                            .with_member_id(s(m))
                            .with_group_instance_id(i.map(s))
                    })
                    .collect(),
            );
        match self.request(
            conn,
            ApiKey::LeaveGroup,
            5,
            RequestKind::LeaveGroup(request),
        ) {
            ResponseKind::LeaveGroup(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn send_commit(
        &mut self,
        conn: u64,
        group: &str,
        generation: i32,
        member: &str,
        offsets: &[(&str, i32, i64, &str)],
    ) -> i32 {
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (topic, partition, offset, metadata) in offsets {
            let p = OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(3)
                .with_committed_metadata(Some(s(metadata)));
            match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(topics);
        self.send(
            conn,
            ApiKey::OffsetCommit,
            9,
            RequestKind::OffsetCommit(request),
        )
    }

    /// Per-partition errors of an OffsetCommit, in request order.
    fn commit(
        &mut self,
        conn: u64,
        group: &str,
        generation: i32,
        member: &str,
        offsets: &[(&str, i32, i64, &str)],
    ) -> Vec<i16> {
        let id = self.send_commit(conn, group, generation, member, offsets);
        commit_errors(self.take(id).expect("commit answered"))
    }

    /// (offset, leader epoch, metadata, error) per requested partition, v9.
    fn fetch_offsets(
        &mut self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Vec<(i64, i32, String, i16)> {
        let request =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(partitions.to_vec())]))]);
        let ResponseKind::OffsetFetch(r) = self.request(
            ADMIN,
            ApiKey::OffsetFetch,
            9,
            RequestKind::OffsetFetch(request),
        ) else {
            panic!()
        };
        r.groups[0].topics[0]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_deref().unwrap_or("").to_string(),
                    p.error_code,
                )
            })
            .collect()
    }

    fn describe(&mut self, group: &str) -> describe_groups_response::DescribedGroup {
        let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
        let ResponseKind::DescribeGroups(mut r) = self.request(
            ADMIN,
            ApiKey::DescribeGroups,
            5,
            RequestKind::DescribeGroups(request),
        ) else {
            panic!()
        };
        r.groups.remove(0)
    }

    fn list_groups(&mut self, states: &[&str]) -> Vec<(String, String)> {
        let request =
            ListGroupsRequest::default().with_states_filter(states.iter().map(|x| s(x)).collect());
        let ResponseKind::ListGroups(r) = self.request(
            ADMIN,
            ApiKey::ListGroups,
            5,
            RequestKind::ListGroups(request),
        ) else {
            panic!()
        };
        r.groups
            .iter()
            .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
            .collect()
    }

    fn delete_groups(&mut self, groups: &[&str]) -> Vec<i16> {
        let request = DeleteGroupsRequest::default()
            .with_groups_names(groups.iter().map(|g| GroupId(s(g))).collect());
        let ResponseKind::DeleteGroups(r) = self.request(
            ADMIN,
            ApiKey::DeleteGroups,
            2,
            RequestKind::DeleteGroups(request),
        ) else {
            panic!()
        };
        r.results.iter().map(|g| g.error_code).collect()
    }

    /// Two members, "t" subscribed, through join and sync: (generation,
    /// leader id, follower id). The leader assigns partition 0 to itself
    /// and 1 to the follower.
    fn form_group(&mut self, group: &str) -> (i32, String, String) {
        let (a, join_a) = self.join_new(10, group, &["t"]);
        let (b, join_b) = self.join_new(20, group, &["t"]);
        assert!(
            self.take(join_a).is_none(),
            "joins wait for the initial delay"
        );
        self.advance(10_000);
        let ra = self.join_response(join_a);
        let rb = self.join_response(join_b);
        assert_eq!((ra.error_code, rb.error_code), (0, 0));
        assert_eq!(ra.generation_id, rb.generation_id);
        let (leader, follower) = if ra.leader.as_str() == a {
            (a, b)
        } else {
            (b, a)
        };
        let (lconn, fconn) = if leader.as_str() == ra.member_id.as_str() {
            (10, 20)
        } else {
            (20, 10)
        };
        let generation = ra.generation_id;
        let follower_sync = self.send_sync(fconn, group, generation, &follower, vec![]);
        assert!(
            self.take(follower_sync).is_none(),
            "followers wait for the leader"
        );
        let leader_sync = self.send_sync(
            lconn,
            group,
            generation,
            &leader,
            vec![
                (leader.clone(), assignment("t", &[0])),
                (follower.clone(), assignment("t", &[1])),
            ],
        );
        assert_eq!(
            self.sync_response(leader_sync).assignment,
            assignment("t", &[0])
        );
        assert_eq!(
            self.sync_response(follower_sync).assignment,
            assignment("t", &[1])
        );
        (generation, leader, follower)
    }
}

fn config() -> NodeConfig {
    NodeConfig {
        offsets_topic_partitions: 5,
        ..NodeConfig::default()
    }
}

fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&1i16.to_be_bytes());
    sub.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedPartition::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(partitions.to_vec()),
    ]);
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&1i16.to_be_bytes());
    a.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

fn commit_errors(r: ResponseKind) -> Vec<i16> {
    let ResponseKind::OffsetCommit(r) = r else {
        panic!("{r:?}")
    };
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

#[test]
fn find_coordinator_names_this_broker_and_creates_the_offsets_topic() {
    let mut h = Harness::new();
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s("g")]);
    let ResponseKind::FindCoordinator(r) = h.request(
        ADMIN,
        ApiKey::FindCoordinator,
        4,
        RequestKind::FindCoordinator(request),
    ) else {
        panic!()
    };
    assert_eq!(r.coordinators[0].error_code, 0);
    assert_eq!(r.coordinators[0].node_id.0, 1);
    assert_eq!(r.coordinators[0].port, 9092);
    assert_eq!(
        h.node
            .partition_offsets("__consumer_offsets", 4)
            .map(|p| p.2),
        Some(0)
    );
    assert!(
        h.node.partition_offsets("__consumer_offsets", 5).is_none(),
        "5 partitions"
    );

    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(s("txn"));
    let ResponseKind::FindCoordinator(r) = h.request(
        ADMIN,
        ApiKey::FindCoordinator,
        3,
        RequestKind::FindCoordinator(request),
    ) else {
        panic!()
    };
    assert_eq!(
        r.error_code,
        code(ResponseError::CoordinatorNotAvailable),
        "no transactions yet"
    );
}

#[test]
fn two_members_join_sync_and_heartbeat() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let (generation, leader, follower) = h.form_group("g");
    assert_eq!(generation, 1);
    assert_eq!(h.heartbeat(10, "g", generation, &leader, None), 0);
    assert_eq!(h.heartbeat(20, "g", generation, &follower, None), 0);
    let d = h.describe("g");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members.len(), 2);
    assert_eq!(
        h.list_groups(&["stable"]),
        vec![("g".to_string(), "Stable".to_string())]
    );
    assert!(h.list_groups(&["Empty"]).is_empty());
    // INCONSISTENT_GROUP_PROTOCOL: another protocol type.
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(SESSION_MS)
        .with_protocol_type(s("connect"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("x"))]);
    let ResponseKind::JoinGroup(r) =
        h.request(30, ApiKey::JoinGroup, 9, RequestKind::JoinGroup(request))
    else {
        panic!()
    };
    assert_eq!(r.error_code, code(ResponseError::InconsistentGroupProtocol));
}

#[test]
fn the_leader_gets_the_members_and_the_initial_delay_extends_for_late_joiners() {
    let mut h = Harness::new();
    let (a, join_a) = h.join_new(10, "g", &["t"]);
    h.advance(2_000);
    let (_b, join_b) = h.join_new(20, "g", &["t"]);
    h.advance(1_500); // the first delay ended; b arrived during it: once more
    assert!(h.take(join_a).is_none());
    h.advance(3_000);
    let ra = h.join_response(join_a);
    let rb = h.join_response(join_b);
    assert_eq!(ra.leader.as_str(), a, "the first member leads");
    assert_eq!(ra.members.len(), 2, "the leader sees every member");
    assert!(rb.members.is_empty(), "followers see none");
    assert_eq!(
        ra.protocol_name.as_ref().map(|p| p.to_string()),
        Some("range".to_string())
    );
}

#[test]
fn join_v3_needs_no_member_id_round() {
    let mut h = Harness::with_config(NodeConfig {
        group_initial_rebalance_delay_ms: 0,
        ..config()
    });
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(subscription(&["t"]))]);
    let ResponseKind::JoinGroup(r) =
        h.request(10, ApiKey::JoinGroup, 3, RequestKind::JoinGroup(request))
    else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1);
    assert!(
        r.member_id.starts_with("client-"),
        "client id prefixes the member id: {}",
        r.member_id.as_str()
    );
}

#[test]
fn session_expiry_removes_a_silent_member_and_rebalances() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let (generation, leader, follower) = h.form_group("g");
    let leader_conn = if h.heartbeat(10, "g", generation, &leader, None) == 0 {
        10
    } else {
        unreachable!()
    };
    // The leader keeps heartbeating, the follower goes silent after its
    // SyncGroup (its last sign of life, 10 s before its session ends).
    for _ in 0..3 {
        h.advance(3_000);
        assert_eq!(h.heartbeat(leader_conn, "g", generation, &leader, None), 0);
    }
    h.advance(3_000);
    assert_eq!(
        h.heartbeat(leader_conn, "g", generation, &leader, None),
        code(ResponseError::RebalanceInProgress),
        "the follower's session expired"
    );
    assert_eq!(
        h.heartbeat(20, "g", generation, &follower, None),
        code(ResponseError::UnknownMemberId)
    );
    let rejoin = h.send_join(leader_conn, "g", &leader, None, &["t"]);
    let r = h.join_response(rejoin);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn leave_group_rebalances_the_rest() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let (generation, leader, follower) = h.form_group("g");
    let r = h.leave(20, "g", &[(&follower, None), ("ghost", None)]);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(
        r.members[1].error_code,
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        h.heartbeat(10, "g", generation, &leader, None),
        code(ResponseError::RebalanceInProgress)
    );
    let rejoin = h.send_join(10, "g", &leader, None, &["t"]);
    assert_eq!(h.join_response(rejoin).generation_id, generation + 1);
    // The last member leaving empties the group.
    let r = h.leave(10, "g", &[(&leader, None)]);
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(h.describe("g").group_state.as_str(), "Empty");
}

#[test]
fn a_static_member_rejoins_without_rebalance_and_its_old_id_is_fenced() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let join_a = h.send_join(10, "g", "", Some("ia"), &["t"]);
    let join_b = h.send_join(20, "g", "", Some("ib"), &["t"]);
    h.advance(10_000);
    let ra = h.join_response(join_a);
    let rb = h.join_response(join_b);
    assert_eq!(
        (ra.error_code, rb.error_code),
        (0, 0),
        "static members skip MEMBER_ID_REQUIRED"
    );
    let generation = ra.generation_id;
    let (a, b) = (ra.member_id.to_string(), rb.member_id.to_string());
    assert!(a.starts_with("ia-"));
    let (leader, follower, lconn, fconn) = if ra.leader == ra.member_id {
        (a.clone(), b.clone(), 10, 20)
    } else {
        (b.clone(), a.clone(), 20, 10)
    };
    let fs = h.send_sync(fconn, "g", generation, &follower, vec![]);
    let ls = h.send_sync(
        lconn,
        "g",
        generation,
        &leader,
        vec![
            (leader.clone(), assignment("t", &[0])),
            (follower.clone(), assignment("t", &[1])),
        ],
    );
    h.sync_response(ls);
    h.sync_response(fs);

    // "ia" restarts: unknown member id, same instance id.
    let rejoin = h.send_join(30, "g", "", Some("ia"), &["t"]);
    let r = h.join_response(rejoin);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, generation, "no rebalance");
    let new_a = r.member_id.to_string();
    assert_ne!(new_a, a);
    assert_ne!(
        r.leader.as_str(),
        new_a,
        "the old leader id is returned, so no trivial assignment runs"
    );
    assert_eq!(
        h.heartbeat(20, "g", generation, &b, Some("ib")),
        0,
        "b saw no rebalance"
    );
    assert_eq!(
        h.heartbeat(10, "g", generation, &a, Some("ia")),
        code(ResponseError::FencedInstanceId)
    );
    assert_eq!(h.heartbeat(30, "g", generation, &new_a, Some("ia")), 0);
    let sync = h.send_sync(30, "g", generation, &new_a, vec![]);
    let expected = if a == leader {
        assignment("t", &[0])
    } else {
        assignment("t", &[1])
    };
    assert_eq!(
        h.sync_response(sync).assignment,
        expected,
        "the assignment carries over"
    );
    // Leaving by instance id alone (v3+).
    let r = h.leave(30, "g", &[("", Some("ia"))]);
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(
        h.heartbeat(20, "g", generation, &b, Some("ib")),
        code(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn offset_commit_checks_generation_and_member_and_waits_for_durability() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let (generation, leader, follower) = h.form_group("g");

    h.auto_flush = false;
    let id = h.send_commit(10, "g", generation, &leader, &[("t", 0, 42, "meta")]);
    assert!(h.take(id).is_none(), "answered only once durable");
    assert_eq!(
        h.fetch_offsets("g", "t", &[0])[0].0,
        -1,
        "not visible before it is durable"
    );
    h.complete_flushes();
    assert_eq!(commit_errors(h.take(id).expect("answered")), vec![0]);
    assert_eq!(
        h.fetch_offsets("g", "t", &[0, 1]),
        vec![(42, 3, "meta".to_string(), 0), (-1, -1, String::new(), 0)]
    );

    assert_eq!(
        h.commit(20, "g", generation, &follower, &[("t", 1, 7, "")]),
        vec![0]
    );
    assert_eq!(
        h.commit(20, "g", generation - 1, &follower, &[("t", 1, 8, "")]),
        vec![code(ResponseError::IllegalGeneration)]
    );
    assert_eq!(
        h.commit(20, "g", generation, "ghost", &[("t", 1, 8, "")]),
        vec![code(ResponseError::UnknownMemberId)]
    );
    assert_eq!(
        h.commit(20, "g", -1, "", &[("t", 1, 8, "")]),
        vec![code(ResponseError::UnknownMemberId)],
        "only members commit to a live group"
    );
    assert_eq!(
        h.commit(
            20,
            "g",
            generation,
            &follower,
            &[
                ("t", 1, 9, ""),
                ("nope", 0, 1, ""),
                ("t", 1, 10, &"x".repeat(5000))
            ]
        ),
        // Grouped by topic in the request: t/1, t/1, nope/0.
        vec![
            0,
            code(ResponseError::OffsetMetadataTooLarge),
            code(ResponseError::UnknownTopicOrPartition)
        ]
    );
    assert_eq!(h.fetch_offsets("g", "t", &[1])[0].0, 9);
    assert_eq!(
        h.commit(20, "nogroup", 3, "m", &[("t", 0, 1, "")]),
        vec![code(ResponseError::IllegalGeneration)]
    );

    // A standalone consumer (no group management) commits with generation -1.
    assert_eq!(h.commit(40, "solo", -1, "", &[("t", 0, 5, "")]), vec![0]);
    assert_eq!(h.fetch_offsets("solo", "t", &[0])[0].0, 5);
    assert_eq!(
        h.list_groups(&["Empty"]),
        vec![("solo".to_string(), "Empty".to_string())]
    );
}

#[test]
fn commits_and_groups_are_records_of_the_hashed_offsets_partition() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    assert_eq!(h.commit(40, "solo", -1, "", &[("t", 0, 5, "")]), vec![0]);
    let partition = partition_for("solo", 5);
    let request = FetchRequest::default()
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s("__consumer_offsets")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_partition_max_bytes(1 << 20)])]);
    let ResponseKind::Fetch(r) = h.request(ADMIN, ApiKey::Fetch, 12, RequestKind::Fetch(request))
    else {
        panic!()
    };
    let records = decode_records_for_test(r.responses[0].partitions[0].records.as_ref().unwrap());
    assert_eq!(records.len(), 1);
    assert_eq!(
        decode_key(records[0].0.as_ref().unwrap()).unwrap(),
        RecordKey::Offset {
            group: "solo".into(),
            topic: "t".into(),
            partition: 0
        }
    );
}

#[test]
fn offsets_and_groups_survive_a_crash() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let (generation, leader, follower) = h.form_group("g");
    assert_eq!(
        h.commit(10, "g", generation, &leader, &[("t", 0, 42, "m0")]),
        vec![0]
    );
    assert_eq!(h.commit(40, "solo", -1, "", &[("t", 1, 5, "")]), vec![0]);
    h.auto_flush = false;
    let lost = h.send_commit(10, "g", generation, &leader, &[("t", 0, 99, "")]);
    assert!(h.take(lost).is_none());

    h.crash_and_restart();
    assert_eq!(
        h.fetch_offsets("g", "t", &[0])[0],
        (42, 3, "m0".to_string(), 0),
        "the unacknowledged commit is gone"
    );
    assert_eq!(h.fetch_offsets("solo", "t", &[1])[0].0, 5);
    let d = h.describe("g");
    // A deliberate deviation from Kafka, which leaves the loaded group
    // Stable: it rebalances once, so that the second half of a cooperative
    // move lost with the old coordinator is not lost for good (see
    // `Coordinator::resume_loaded`).
    assert_eq!(
        d.group_state.as_str(),
        "PreparingRebalance",
        "loaded with its generation and members, and rebalancing"
    );
    assert_eq!(d.members.len(), 2);
    // Members are told to rejoin, and may commit at the loaded generation
    // until the join phase ends...
    assert_eq!(
        h.heartbeat(10, "g", generation, &leader, None),
        code(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        h.commit(10, "g", generation, &leader, &[("t", 0, 43, "")]),
        vec![0]
    );
    // ...and one that never rejoins is dropped when the join phase ends.
    let rejoin = h.send_join(10, "g", &leader, None, &["t"]);
    h.advance(REBALANCE_MS as u64);
    assert_eq!(
        h.join_response(rejoin).generation_id,
        generation + 1,
        "generations continue after a restart"
    );
    assert_eq!(
        h.heartbeat(20, "g", generation, &follower, None),
        code(ResponseError::UnknownMemberId)
    );
}

#[test]
fn delete_groups_only_empty_ones_and_the_deletion_survives_a_crash() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let (generation, leader, follower) = h.form_group("g");
    assert_eq!(
        h.commit(10, "g", generation, &leader, &[("t", 0, 42, "")]),
        vec![0]
    );
    assert_eq!(
        h.delete_groups(&["g", "missing", ""]),
        vec![
            code(ResponseError::NonEmptyGroup),
            code(ResponseError::GroupIdNotFound),
            code(ResponseError::GroupIdNotFound)
        ]
    );
    h.leave(10, "g", &[(&leader, None), (&follower, None)]);
    assert_eq!(h.describe("g").group_state.as_str(), "Empty");
    assert_eq!(h.delete_groups(&["g"]), vec![0]);
    assert_eq!(h.describe("g").group_state.as_str(), "Dead");
    assert_eq!(h.fetch_offsets("g", "t", &[0])[0].0, -1);
    h.crash_and_restart();
    assert_eq!(
        h.fetch_offsets("g", "t", &[0])[0].0,
        -1,
        "tombstones replayed"
    );
    assert!(h.list_groups(&[]).is_empty());
}

#[test]
fn offset_delete_refuses_subscribed_topics_of_a_live_group() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    h.create_topic("old", 1);
    let (generation, leader, _) = h.form_group("g");
    assert_eq!(
        h.commit(
            10,
            "g",
            generation,
            &leader,
            &[("t", 0, 1, ""), ("old", 0, 2, "")]
        ),
        vec![0, 0]
    );
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ]),
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("old")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ]),
        ]);
    let ResponseKind::OffsetDelete(r) = h.request(
        ADMIN,
        ApiKey::OffsetDelete,
        0,
        RequestKind::OffsetDelete(request),
    ) else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        code(ResponseError::GroupSubscribedToTopic)
    );
    assert_eq!(r.topics[1].partitions[0].error_code, 0);
    assert_eq!(h.fetch_offsets("g", "old", &[0])[0].0, -1);
    assert_eq!(h.fetch_offsets("g", "t", &[0])[0].0, 1);
    let request = OffsetDeleteRequest::default().with_group_id(GroupId(s("missing")));
    let ResponseKind::OffsetDelete(r) = h.request(
        ADMIN,
        ApiKey::OffsetDelete,
        0,
        RequestKind::OffsetDelete(request),
    ) else {
        panic!()
    };
    assert_eq!(r.error_code, code(ResponseError::GroupIdNotFound));
}

#[test]
fn offsets_of_an_empty_group_expire_after_retention() {
    let mut h = Harness::with_config(NodeConfig {
        offsets_retention_minutes: 1,
        retention_check_interval_ms: 1_000,
        ..config()
    });
    h.create_topic("t", 1);
    assert_eq!(h.commit(40, "solo", -1, "", &[("t", 0, 5, "")]), vec![0]);
    h.advance(30_000);
    assert_eq!(h.fetch_offsets("solo", "t", &[0])[0].0, 5);
    h.advance(40_000);
    assert_eq!(h.fetch_offsets("solo", "t", &[0])[0].0, -1, "expired");
    assert!(
        h.list_groups(&[]).is_empty(),
        "nothing left: the group is gone"
    );
    h.crash_and_restart();
    assert_eq!(h.fetch_offsets("solo", "t", &[0])[0].0, -1);
}

#[test]
fn error_paths() {
    let mut h = Harness::with_config(NodeConfig {
        group_max_size: 1,
        ..config()
    });
    h.create_topic("t", 2);
    // INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT, UNKNOWN_MEMBER_ID.
    let id = h.send_join(10, "", "", None, &["t"]);
    assert_eq!(
        h.join_response(id).error_code,
        code(ResponseError::InvalidGroupId)
    );
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(s("range"))
        ]);
    let ResponseKind::JoinGroup(r) =
        h.request(10, ApiKey::JoinGroup, 9, RequestKind::JoinGroup(request))
    else {
        panic!()
    };
    assert_eq!(r.error_code, code(ResponseError::InvalidSessionTimeout));
    let id = h.send_join(10, "g", "ghost", None, &["t"]);
    assert_eq!(
        h.join_response(id).error_code,
        code(ResponseError::UnknownMemberId)
    );

    // One member fits; GROUP_MAX_SIZE_REACHED for the second.
    let (a, join_a) = h.join_new(10, "g", &["t"]);
    let join_b = h.send_join(20, "g", "", None, &["t"]);
    assert_eq!(
        h.join_response(join_b).error_code,
        code(ResponseError::GroupMaxSizeReached)
    );
    // Heartbeat and SyncGroup during the rebalance.
    assert_eq!(
        h.heartbeat(40, "g", 0, &a, None),
        code(ResponseError::RebalanceInProgress)
    );
    // No protocol is selected before the first generation, so naming one
    // is inconsistent (Kafka checks that before the state).
    let sync = h.send_sync(40, "g", 0, &a, vec![]);
    assert_eq!(
        h.sync_response(sync).error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    h.advance(10_000);
    let r = h.join_response(join_a);
    assert_eq!(r.error_code, 0);
    let sync = h.send_sync(10, "g", r.generation_id + 1, &a, vec![]);
    assert_eq!(
        h.sync_response(sync).error_code,
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        h.heartbeat(40, "g", r.generation_id + 1, &a, None),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        h.heartbeat(40, "nogroup", 1, &a, None),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        h.heartbeat(40, "", 1, &a, None),
        code(ResponseError::InvalidGroupId)
    );
    // CompletingRebalance: commits are refused until the member has its assignment.
    assert_eq!(
        h.commit(40, "g", r.generation_id, &a, &[("t", 0, 1, "")]),
        vec![code(ResponseError::RebalanceInProgress)]
    );
    assert_eq!(
        h.delete_groups(&["g"]),
        vec![code(ResponseError::NonEmptyGroup)]
    );
}

#[test]
fn a_leader_assigning_a_partition_twice_is_refused() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let (a, join_a) = h.join_new(10, "g", &["t"]);
    let (b, join_b) = h.join_new(20, "g", &["t"]);
    h.advance(10_000);
    let ra = h.join_response(join_a);
    h.join_response(join_b);
    let (leader, follower, lconn, fconn) = if ra.leader.as_str() == a {
        (a, b, 10, 20)
    } else {
        (b, a, 20, 10)
    };
    let fs = h.send_sync(fconn, "g", ra.generation_id, &follower, vec![]);
    let ls = h.send_sync(
        lconn,
        "g",
        ra.generation_id,
        &leader,
        vec![
            (leader.clone(), assignment("t", &[0, 1])),
            (follower.clone(), assignment("t", &[1])),
        ],
    );
    assert_eq!(
        h.sync_response(ls).error_code,
        code(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        h.sync_response(fs).error_code,
        code(ResponseError::RebalanceInProgress)
    );
    assert_eq!(h.describe("g").group_state.as_str(), "PreparingRebalance");
}

#[test]
fn a_member_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let (a, join_a) = h.join_new(10, "g", &["t"]);
    let (b, join_b) = h.join_new(20, "g", &["t"]);
    h.advance(10_000);
    let ra = h.join_response(join_a);
    h.join_response(join_b);
    let (leader, follower, lconn) = if ra.leader.as_str() == a {
        (a, b, 10)
    } else {
        (b, a, 20)
    };
    let ls = h.send_sync(
        lconn,
        "g",
        ra.generation_id,
        &leader,
        vec![
            (leader.clone(), assignment("t", &[0])),
            (follower.clone(), assignment("t", &[1])),
        ],
    );
    h.sync_response(ls);
    // The follower heartbeats but never syncs.
    for _ in 0..8 {
        h.advance(3_000);
        let _ = h.heartbeat(99, "g", ra.generation_id, &follower, None);
        let _ = h.heartbeat(lconn, "g", ra.generation_id, &leader, None);
    }
    assert_eq!(
        h.heartbeat(99, "g", ra.generation_id, &follower, None),
        code(ResponseError::UnknownMemberId)
    );
}

// --- KIP-848 consumer protocol ---------------------------------------------------

impl Harness {
    /// A ConsumerGroupHeartbeat v1: (error, epoch, assignment as partition
    /// indexes when sent).
    fn cg_heartbeat(
        &mut self,
        conn: u64,
        group: &str,
        member: &str,
        epoch: i32,
        owned: Option<&[i32]>,
        topic_id: uuid::Uuid,
    ) -> (i16, i32, Option<Vec<i32>>) {
        let id = self.send_cg_heartbeat(conn, group, member, epoch, owned, topic_id);
        let response = self.take(id).expect("a heartbeat response");
        Harness::cg_heartbeat_result(response)
    }

    fn send_cg_heartbeat(
        &mut self,
        conn: u64,
        group: &str,
        member: &str,
        epoch: i32,
        owned: Option<&[i32]>,
        topic_id: uuid::Uuid,
    ) -> i32 {
        use consumer_group_heartbeat_request::TopicPartitions;
        let mut request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_topic_partitions(owned.map(|o| {
                vec![TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(o.to_vec())]
            }));
        if epoch == 0 {
            request = request
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![TopicName(s("orders"))]));
        }
        self.send(
            conn,
            ApiKey::ConsumerGroupHeartbeat,
            1,
            RequestKind::ConsumerGroupHeartbeat(request),
        )
    }

    fn cg_heartbeat_result(response: ResponseKind) -> (i16, i32, Option<Vec<i32>>) {
        let ResponseKind::ConsumerGroupHeartbeat(r) = response else {
            panic!()
        };
        let assignment = r.assignment.map(|a| {
            let mut parts: Vec<i32> = a
                .topic_partitions
                .iter()
                .flat_map(|t| t.partitions.clone())
                .collect();
            parts.sort();
            parts
        });
        (r.error_code, r.member_epoch, assignment)
    }
}

impl Harness {
    /// The topic id, as clients learn it from Metadata.
    fn topic_id(&mut self, topic: &str) -> uuid::Uuid {
        let ResponseKind::Metadata(r) = self.request(
            ADMIN,
            ApiKey::Metadata,
            12,
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(
                vec![metadata_request::MetadataRequestTopic::default(
                    )
                    .with_name(Some(TopicName(s(topic))))],
            ))),
        ) else {
            panic!()
        };
        r.topics[0].topic_id
    }
}

#[test]
fn consumer_protocol_members_reconcile_commit_with_epochs_and_keep_classic_members_out() {
    let mut h = Harness::new();
    h.create_topic("orders", 4);
    let topic_id = h.topic_id("orders");
    let (e, a_epoch, a_parts) = h.cg_heartbeat(1, "g848", "member-a", 0, None, topic_id);
    assert_eq!(e, 0);
    assert_eq!(a_parts, Some(vec![0, 1, 2, 3]));
    let (e, b_epoch, b_parts) = h.cg_heartbeat(2, "g848", "member-b", 0, None, topic_id);
    assert_eq!(e, 0);
    assert_eq!(b_parts, Some(vec![]), "nothing until a revokes");
    // a is asked to revoke two; its epoch stays until it confirms.
    let (e, a_epoch2, a_parts2) = h.cg_heartbeat(
        1,
        "g848",
        "member-a",
        a_epoch,
        Some(&[0, 1, 2, 3]),
        topic_id,
    );
    assert_eq!(e, 0);
    assert_eq!(a_epoch2, a_epoch);
    let a_keeps = a_parts2.expect("a smaller assignment");
    assert_eq!(a_keeps.len(), 2);
    let (e, a_epoch3, _) = h.cg_heartbeat(1, "g848", "member-a", a_epoch, Some(&a_keeps), topic_id);
    assert_eq!(e, 0);
    assert!(
        a_epoch3 > a_epoch,
        "a moved to the new epoch after revoking"
    );
    let (e, b_epoch2, b_parts2) =
        h.cg_heartbeat(2, "g848", "member-b", b_epoch, Some(&[]), topic_id);
    assert_eq!(e, 0);
    let b_gets = b_parts2.expect("b's partitions");
    assert_eq!(b_gets.len(), 2);
    assert!(
        b_gets.iter().all(|p| !a_keeps.contains(p)),
        "no partition owned twice"
    );
    // Commits carry the member epoch.
    assert_eq!(
        h.commit(
            2,
            "g848",
            b_epoch2,
            "member-b",
            &[("orders", b_gets[0], 10, "")]
        ),
        vec![0]
    );
    assert_eq!(
        h.commit(
            1,
            "g848",
            a_epoch,
            "member-a",
            &[("orders", a_keeps[0], 5, "")]
        ),
        vec![ResponseError::StaleMemberEpoch.code()],
        "an old epoch cannot commit"
    );
    // A classic member cannot join a consumer-protocol group.
    let id = h.send_join(3, "g848", "", None, &["orders"]);
    assert_eq!(
        h.join_response(id).error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    // ListGroups v5 shows its type; ConsumerGroupDescribe its members.
    let ResponseKind::ListGroups(r) = h.request(
        ADMIN,
        ApiKey::ListGroups,
        5,
        RequestKind::ListGroups(ListGroupsRequest::default()),
    ) else {
        panic!()
    };
    let listed = r
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == "g848")
        .expect("listed");
    assert_eq!(listed.group_type.as_str(), "consumer");
    let ResponseKind::ConsumerGroupDescribe(r) = h.request(
        ADMIN,
        ApiKey::ConsumerGroupDescribe,
        1,
        RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g848"))]),
        ),
    ) else {
        panic!()
    };
    assert_eq!(r.groups[0].members.len(), 2);
    assert_eq!(r.groups[0].group_state.as_str(), "Stable");
}

#[test]
fn the_offsets_topic_is_compacted_and_committed_offsets_survive_it() {
    let mut config = config();
    config.offsets_topic_partitions = 1;
    config.log.segment_bytes = 2048;
    config.retention_check_interval_ms = 1_000;
    let mut h = Harness::with_config(config);
    h.create_topic("orders", 1);
    for offset in 1..=300 {
        assert_eq!(
            h.commit(2, "simple", -1, "", &[("orders", 0, offset, "m")]),
            vec![0]
        );
    }
    let dir_bytes = |h: &mut Harness| -> u64 {
        use seedlog_core::storage::Storage;
        let storage = h.node.storage_mut();
        let files = storage.list("__consumer_offsets-0").expect("listed");
        files
            .iter()
            .map(|f| {
                storage
                    .len(&format!("__consumer_offsets-0/{f}"))
                    .unwrap_or(0)
            })
            .sum()
    };
    let before = dir_bytes(&mut h);
    // Retention checks run compaction a step at a time.
    for _ in 0..100 {
        h.advance(1_000);
    }
    let after = dir_bytes(&mut h);
    assert!(
        after * 2 < before,
        "compaction shrank the offsets log: {before} -> {after} bytes"
    );
    h.crash_and_restart();
    let fetched = h.fetch_offsets("simple", "orders", &[0]);
    assert_eq!(
        fetched[0].0, 300,
        "the latest commit survives compaction and a restart"
    );
}

/// KIP-848 membership is in `__consumer_offsets`: a heartbeat is answered
/// once what it changed is durable, and a broker that restarts knows every
/// member at its epoch, with what it owns, so no partition gets two owners.
#[test]
fn consumer_protocol_members_survive_a_crash_and_heartbeats_wait_for_durability() {
    let mut h = Harness::new();
    h.create_topic("orders", 4);
    let topic_id = h.topic_id("orders");
    let (_, a_epoch, a_parts) = h.cg_heartbeat(1, "g848", "member-a", 0, None, topic_id);
    let a_parts = a_parts.expect("a's partitions");
    let (_, b_epoch, _) = h.cg_heartbeat(2, "g848", "member-b", 0, None, topic_id);
    let (e, _, a_keeps) = h.cg_heartbeat(1, "g848", "member-a", a_epoch, Some(&a_parts), topic_id);
    assert_eq!(e, 0);
    let a_keeps = a_keeps.expect("a is asked to give two up");
    assert_eq!(a_keeps.len(), 2);

    // a confirms, but the broker crashes before that is on disk: the
    // heartbeat is not answered, and the confirmation is lost.
    h.auto_flush = false;
    let lost = h.send_cg_heartbeat(1, "g848", "member-a", a_epoch, Some(&a_keeps), topic_id);
    assert!(
        h.take(lost).is_none(),
        "not answered before its records are durable"
    );
    h.crash_and_restart();

    // Both members are known at their epochs; b may not have a's
    // partitions until a confirms again.
    let (e, b_epoch2, b_parts) =
        h.cg_heartbeat(2, "g848", "member-b", b_epoch, Some(&[]), topic_id);
    assert_eq!(e, 0, "b is known after the restart");
    assert_eq!(b_epoch2, b_epoch);
    assert!(b_parts.unwrap_or_default().is_empty(), "a still owns them");
    let (e, a_epoch2, _) = h.cg_heartbeat(1, "g848", "member-a", a_epoch, Some(&a_keeps), topic_id);
    assert_eq!(e, 0, "a is known after the restart");
    assert!(a_epoch2 > a_epoch, "a moves on once it confirms");
    let (e, _, b_parts) = h.cg_heartbeat(2, "g848", "member-b", b_epoch2, Some(&[]), topic_id);
    assert_eq!(e, 0);
    let b_parts = b_parts.expect("b's partitions");
    assert_eq!(b_parts.len(), 2);
    assert!(b_parts.iter().all(|p| !a_keeps.contains(p)));
    // Commits are checked against the loaded epochs.
    assert_eq!(
        h.commit(
            1,
            "g848",
            a_epoch2,
            "member-a",
            &[("orders", a_keeps[0], 5, "")]
        ),
        vec![0]
    );
    assert_eq!(
        h.commit(
            1,
            "g848",
            a_epoch,
            "member-a",
            &[("orders", a_keeps[0], 6, "")]
        ),
        vec![ResponseError::StaleMemberEpoch.code()]
    );
}

/// Kafka's coordinator runtime answers every group operation, a classic
/// Heartbeat included, only once what it wrote before is committed. A
/// coordinator cut off from its `__consumer_offsets` followers (its writes
/// never commit) thus renews no member's session while a new coordinator
/// may already be handing the member's partitions on (group-cooperative
/// seed 3145 found the gap).
#[test]
fn a_heartbeat_waits_for_the_groups_pending_writes() {
    let mut h = Harness::new();
    h.create_topic("t", 2);
    let (generation, leader, follower) = h.form_group("g");
    assert_eq!(h.heartbeat(20, "g", generation, &follower, None), 0);

    h.auto_flush = false;
    let commit = h.send_commit(10, "g", generation, &leader, &[("t", 0, 42, "")]);
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(generation)
        .with_member_id(s(&follower));
    let beat = h.send(20, ApiKey::Heartbeat, 4, RequestKind::Heartbeat(request));
    assert!(
        h.take(beat).is_none(),
        "not answered before the commit is durable"
    );
    assert!(h.take(commit).is_none());

    h.complete_flushes();
    assert_eq!(commit_errors(h.take(commit).expect("answered")), vec![0]);
    match h.take(beat) {
        Some(ResponseKind::Heartbeat(r)) => assert_eq!(r.error_code, 0),
        other => panic!("expected the heartbeat's answer, got {other:?}"),
    }
    h.auto_flush = true;
    assert_eq!(
        h.heartbeat(20, "g", generation - 1, &follower, None),
        code(ResponseError::IllegalGeneration),
        "with nothing pending, an error is answered at once"
    );
}
