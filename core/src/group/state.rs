//! The classic group states and the transitions Kafka allows between them
//! (`GroupMetadata.scala`'s `validPreviousStates`).

/// Where a classic group is in its rebalance cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for every member to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment and heartbeats.
    Stable,
    /// Removed (deleted or expired); answers as if it did not exist.
    Dead,
}

impl GroupState {
    /// The name Kafka reports in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Whether `self` may be entered from `from`.
    pub fn can_follow(self, from: GroupState) -> bool {
        use GroupState::*;
        match self {
            Dead => true,
            PreparingRebalance => matches!(from, Stable | CompletingRebalance | Empty),
            CompletingRebalance => from == PreparingRebalance,
            Stable => from == CompletingRebalance,
            Empty => from == PreparingRebalance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GroupState::*;

    #[test]
    fn transitions_follow_kafka() {
        assert!(PreparingRebalance.can_follow(Empty));
        assert!(CompletingRebalance.can_follow(PreparingRebalance));
        assert!(Stable.can_follow(CompletingRebalance));
        assert!(!Stable.can_follow(PreparingRebalance));
        assert!(!Empty.can_follow(Stable));
        assert!(Dead.can_follow(Stable));
        assert_eq!(CompletingRebalance.name(), "CompletingRebalance");
    }
}
