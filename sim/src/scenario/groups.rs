//! The `[groups]` section of a scenario: simulated consumers that are
//! members of one consumer group, the protocol they speak and how often
//! they churn.

use serde::{Deserialize, Serialize};

/// Members a group may have (each one a simulated client).
pub const MEMBERS_MAX: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupProtocol {
    /// JoinGroup / SyncGroup / Heartbeat / LeaveGroup, client-side assignor.
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat, server-side assignor.
    Consumer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Groups {
    pub protocol: GroupProtocol,
    /// Classic: `range` (eager) or `cooperative-sticky` (KIP-429), run by
    /// the group leader. Consumer: the server assignor, `uniform` or
    /// `range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignor: Option<String>,
    /// The AZ of each member.
    pub members: Vec<String>,
    /// Members carry `group.instance.id` (KIP-345): a crashed member comes
    /// back under a new member id with the same instance id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub static_membership: bool,
    /// The group id.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Classic: the session timeout members ask for; consumer protocol:
    /// the brokers' `group.consumer.session.timeout.ms`.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// Classic: the members' heartbeat interval; consumer protocol: the
    /// brokers' `group.consumer.heartbeat.interval.ms`.
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// Members commit what they consumed this often (and before giving a
    /// partition up).
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Liveness: after the heal every group is stable within this.
    #[serde(default = "default_stable_ms_max")]
    pub stable_ms_max: u64,
    #[serde(default)]
    pub churn: Churn,
}

/// Member churn during the fault phase: per member, Poisson rates of each
/// kind; a member that left, crashed or paused comes back after `down_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Leaves cleanly (LeaveGroup / epoch -1), comes back later.
    #[serde(default)]
    pub leave_per_min: f64,
    /// Dies without a word (no LeaveGroup); a new process comes back.
    #[serde(default)]
    pub crash_per_min: f64,
    /// Stalls (GC-like): misses heartbeats, then carries on where it was.
    #[serde(default)]
    pub pause_per_min: f64,
    #[serde(default = "default_down_ms")]
    pub down_ms: [u64; 2],
}

impl Default for Churn {
    fn default() -> Churn {
        Churn {
            leave_per_min: 0.0,
            crash_per_min: 0.0,
            pause_per_min: 0.0,
            down_ms: default_down_ms(),
        }
    }
}

fn default_group_id() -> String {
    "sim-group".to_string()
}
fn default_session_timeout_ms() -> u64 {
    3_000
}
fn default_heartbeat_interval_ms() -> u64 {
    300
}
fn default_commit_interval_ms() -> u64 {
    500
}
fn default_stable_ms_max() -> u64 {
    20_000
}
fn default_down_ms() -> [u64; 2] {
    [500, 5_000]
}

impl Groups {
    /// The assignor, defaulted by protocol.
    pub fn assignor(&self) -> &str {
        match (&self.assignor, self.protocol) {
            (Some(a), _) => a,
            (None, GroupProtocol::Classic) => "range",
            (None, GroupProtocol::Consumer) => "uniform",
        }
    }

    /// Whether the classic assignor is cooperative (KIP-429).
    pub fn cooperative(&self) -> bool {
        self.protocol == GroupProtocol::Classic && self.assignor() == "cooperative-sticky"
    }

    /// Checks the section; the error names the field.
    pub fn validate(&self, azs: &[String], fault_ms: u64, liveness_ms: u64) -> Result<(), String> {
        if self.members.is_empty() || self.members.len() > MEMBERS_MAX {
            return Err(format!(
                "groups.members: 1 to {MEMBERS_MAX} members (their AZs), got {}",
                self.members.len()
            ));
        }
        if let Some(az) = self.members.iter().find(|az| !azs.contains(az)) {
            return Err(format!("groups.members: unknown AZ '{az}'"));
        }
        let known: &[&str] = match self.protocol {
            GroupProtocol::Classic => &["range", "cooperative-sticky"],
            GroupProtocol::Consumer => &["uniform", "range"],
        };
        if !known.contains(&self.assignor()) {
            return Err(format!(
                "groups.assignor: '{}' is not one of {} for protocol {:?}",
                self.assignor(),
                known.join(", "),
                self.protocol
            ));
        }
        if self.group_id.is_empty() {
            return Err("groups.group_id: must not be empty".into());
        }
        for (field, v) in [
            ("groups.session_timeout_ms", self.session_timeout_ms),
            ("groups.heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("groups.commit_interval_ms", self.commit_interval_ms),
            ("groups.stable_ms_max", self.stable_ms_max),
        ] {
            if v == 0 {
                return Err(format!("{field}: must be positive"));
            }
        }
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms {
            return Err(format!(
                "groups.heartbeat_interval_ms: at most a third of session_timeout_ms ({}), got {}",
                self.session_timeout_ms, self.heartbeat_interval_ms
            ));
        }
        if self.stable_ms_max > liveness_ms {
            return Err(format!(
                "groups.stable_ms_max ({}) exceeds phases.liveness_ms ({liveness_ms})",
                self.stable_ms_max
            ));
        }
        let c = &self.churn;
        for (field, rate) in [
            ("groups.churn.leave_per_min", c.leave_per_min),
            ("groups.churn.crash_per_min", c.crash_per_min),
            ("groups.churn.pause_per_min", c.pause_per_min),
        ] {
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(format!("{field}: a rate >= 0, got {rate}"));
            }
        }
        let [lo, hi] = c.down_ms;
        if lo > hi || hi == 0 || hi >= fault_ms {
            return Err(format!(
                "groups.churn.down_ms: [{lo}, {hi}] is not a range shorter than phases.fault_ms ({fault_ms})"
            ));
        }
        Ok(())
    }
}
