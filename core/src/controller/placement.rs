//! Rack-aware replica placement, after Kafka's StripedReplicaPlacer.
//!
//! Brokers are striped over racks into one list that alternates racks
//! (a1, b1, c1, a2, b2, c2, ...). Partition `p` takes its first replica
//! (its preferred leader) at `start + p` in that list, so leaders go round
//! the brokers and balance. The other replicas follow in list order,
//! skipping a broker whose rack already holds a replica of the partition
//! until every rack holds one: replicas spread over as many racks as there
//! are. Every `n` partitions the followers shift by one, so the same
//! leader does not always pair with the same followers.
//!
//! Kafka shuffles with a random source; here the only randomness is the
//! `start` offset the controller draws from its seeded RNG, so a placement
//! is a pure function of its inputs.

use std::collections::{BTreeMap, BTreeSet};

/// A broker that may receive replicas (unfenced, not shutting down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableBroker {
    pub id: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("replication factor must be positive, got {0}")]
    NonPositiveReplicationFactor(i32),
    #[error("replication factor {replication_factor} is larger than the {usable} usable brokers")]
    NotEnoughBrokers {
        replication_factor: i32,
        usable: usize,
    },
}

/// The brokers in rack-alternating order: racks sorted by name (brokers
/// without a rack form one rack of their own), brokers within a rack by id.
pub fn striped_order(brokers: &[UsableBroker]) -> Vec<UsableBroker> {
    let mut racks: BTreeMap<Option<&str>, Vec<&UsableBroker>> = BTreeMap::new();
    for broker in brokers {
        racks
            .entry(broker.rack.as_deref())
            .or_default()
            .push(broker);
    }
    for members in racks.values_mut() {
        members.sort_by_key(|b| b.id);
    }
    let deepest = racks.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(brokers.len());
    for depth in 0..deepest {
        for members in racks.values() {
            if let Some(broker) = members.get(depth) {
                out.push((*broker).clone());
            }
        }
    }
    assert_eq!(out.len(), brokers.len(), "striping keeps every broker");
    out
}

/// Replica lists for partitions `first_partition .. first_partition +
/// count`, `replication_factor` each.
pub fn place(
    brokers: &[UsableBroker],
    first_partition: i32,
    count: i32,
    replication_factor: i32,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if replication_factor <= 0 {
        return Err(PlacementError::NonPositiveReplicationFactor(
            replication_factor,
        ));
    }
    let rf = replication_factor as usize;
    if rf > brokers.len() {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            usable: brokers.len(),
        });
    }
    assert!(
        count >= 0 && first_partition >= 0,
        "partition range is valid"
    );
    let order = striped_order(brokers);
    let n = order.len();
    let rack_count = order
        .iter()
        .map(|b| b.rack.as_deref())
        .collect::<BTreeSet<_>>()
        .len();
    let mut out = Vec::with_capacity(count as usize);
    for p in first_partition..first_partition + count {
        let p = p as usize;
        let first = (start + p) % n;
        // Followers start after the leader, shifted by one more every n
        // partitions (mod n - 1 so the shift never lands on the leader).
        let shift = if n > 1 { (p / n) % (n - 1) } else { 0 };
        let mut replicas = vec![order[first].id];
        let mut racks_used: BTreeSet<Option<&str>> = BTreeSet::new();
        racks_used.insert(order[first].rack.as_deref());
        let candidates: Vec<&UsableBroker> = (1..n)
            .map(|k| &order[(first + ((shift + k - 1) % (n - 1)) + 1) % n])
            .collect();
        let mut taken = vec![false; candidates.len()];
        // Bounded: each pass takes at least one candidate or the rack set
        // resets, and there are rf - 1 to take from n - 1.
        for _pass in 0..2 * n {
            if replicas.len() == rf {
                break;
            }
            let mut took = false;
            for (i, candidate) in candidates.iter().enumerate() {
                if replicas.len() == rf {
                    break;
                }
                if taken[i] || racks_used.contains(&candidate.rack.as_deref()) {
                    continue;
                }
                taken[i] = true;
                took = true;
                replicas.push(candidate.id);
                racks_used.insert(candidate.rack.as_deref());
                if racks_used.len() == rack_count {
                    // Every rack holds one: the next round may reuse racks.
                    racks_used.clear();
                }
            }
            if !took {
                racks_used.clear();
            }
        }
        assert_eq!(replicas.len(), rf, "placement filled partition {p}");
        let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
        assert_eq!(distinct.len(), rf, "replicas of partition {p} are distinct");
        out.push(replicas);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(spec: &[(i32, &str)]) -> Vec<UsableBroker> {
        spec.iter()
            .map(|&(id, rack)| UsableBroker {
                id,
                rack: Some(rack.to_string()),
            })
            .collect()
    }

    #[test]
    fn replicas_span_racks_and_leaders_rotate() {
        let b = brokers(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        let placed = place(&b, 0, 12, 3, 0).unwrap();
        let rack = |id: i32| b.iter().find(|x| x.id == id).unwrap().rack.clone();
        let mut leaders = BTreeMap::new();
        for replicas in &placed {
            let racks: BTreeSet<_> = replicas.iter().map(|&r| rack(r)).collect();
            assert_eq!(racks.len(), 3, "{replicas:?} spans three racks");
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        assert!(leaders.values().all(|&c| c == 2), "balanced: {leaders:?}");
    }

    #[test]
    fn more_replicas_than_racks_still_distinct() {
        let b = brokers(&[(1, "a"), (2, "a"), (3, "b")]);
        for replicas in place(&b, 0, 5, 3, 1).unwrap() {
            let set: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(set.len(), 3);
        }
    }

    #[test]
    fn errors() {
        let b = brokers(&[(1, "a")]);
        assert_eq!(
            place(&b, 0, 1, 2, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 2,
                usable: 1
            })
        );
        assert!(place(&b, 0, 1, 0, 0).is_err());
    }
}
