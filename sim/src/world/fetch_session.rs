//! A simulated consumer's side of a KIP-227 fetch session with one broker
//! (the Java client's `FetchSessionHandler`, which kafka-python follows).
//!
//! The first fetch to a broker is full, at epoch 0, asking for a session.
//! Once the broker made one, each fetch names only the partitions added or
//! whose position or leader epoch moved since the last, and those that
//! left; the answer lists only partitions with news. Any error, lost
//! connection or timeout sends the next fetch full again.
//!
//! The handler also holds the broker to the protocol: a full answer must
//! list exactly the partitions asked, an incremental one none outside the
//! session. Anything else is a `fetch_session` violation: a consumer would
//! wait forever for a partition the broker silently dropped.

use seedlog_core::node::fetch_session::{next_epoch, INITIAL_EPOCH, INVALID_SESSION_ID};
use std::collections::BTreeMap;

/// One partition to fetch: (index in the world's `tps`, position, leader
/// epoch).
pub(super) type Wanted = (usize, i64, i32);

#[derive(Debug)]
pub(super) struct FetchSession {
    /// The session id and epoch the next fetch carries.
    id: i32,
    epoch: i32,
    /// What the broker holds for this session (or will, once the fetch in
    /// flight is answered): partition -> (position, leader epoch).
    partitions: BTreeMap<usize, (i64, i32)>,
}

/// The fetch to send: its session fields and what it names.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SessionFetch {
    pub(super) id: i32,
    pub(super) epoch: i32,
    pub(super) send: Vec<Wanted>,
    pub(super) forget: Vec<usize>,
}

impl Default for FetchSession {
    fn default() -> FetchSession {
        FetchSession {
            id: INVALID_SESSION_ID,
            epoch: INITIAL_EPOCH,
            partitions: BTreeMap::new(),
        }
    }
}

impl FetchSession {
    fn is_full(&self) -> bool {
        self.epoch <= INITIAL_EPOCH
    }

    /// The next fetch for the partitions `wanted` (ascending, no repeats).
    pub(super) fn build(&mut self, wanted: &[Wanted]) -> SessionFetch {
        debug_assert!(wanted.windows(2).all(|w| w[0].0 < w[1].0), "ascending");
        let mut fetch = SessionFetch {
            id: self.id,
            epoch: self.epoch,
            ..SessionFetch::default()
        };
        if self.is_full() {
            self.partitions = wanted.iter().map(|&(tp, o, e)| (tp, (o, e))).collect();
            fetch.send = wanted.to_vec();
            return fetch;
        }
        // Both ascend: one merged walk finds what moved and what is no
        // longer wanted (a search and an insert per partition was most of
        // a large cluster's consumer tick).
        let mut held = self.partitions.iter().peekable();
        for &(tp, offset, epoch) in wanted {
            while let Some((&gone, _)) = held.next_if(|(h, _)| **h < tp) {
                fetch.forget.push(gone);
            }
            let same = held
                .next_if(|(h, _)| **h == tp)
                .is_some_and(|(_, v)| *v == (offset, epoch));
            if !same {
                fetch.send.push((tp, offset, epoch));
            }
        }
        fetch.forget.extend(held.map(|(gone, _)| *gone));
        self.partitions = wanted.iter().map(|&(tp, o, e)| (tp, (o, e))).collect();
        fetch
    }

    /// Takes an answer's session fields; `listed` are the partitions it
    /// answered. Err names how the broker broke the protocol.
    pub(super) fn handle_answer(
        &mut self,
        error_code: i16,
        session_id: i32,
        listed: &[usize],
    ) -> Result<(), String> {
        if error_code != 0 {
            self.start_over(error_code);
            return Ok(());
        }
        let outside: Vec<usize> = listed
            .iter()
            .filter(|tp| !self.partitions.contains_key(tp))
            .copied()
            .collect();
        if self.is_full() {
            let mut sorted = listed.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            let asked: Vec<usize> = self.partitions.keys().copied().collect();
            if sorted != asked || sorted.len() != listed.len() {
                self.handle_error();
                return Err(format!(
                    "a full fetch answer (session {session_id}) lists partitions {sorted:?} for {asked:?} asked"
                ));
            }
            (self.id, self.epoch) = if session_id == INVALID_SESSION_ID {
                (INVALID_SESSION_ID, INITIAL_EPOCH)
            } else {
                (session_id, 1)
            };
            return Ok(());
        }
        if !outside.is_empty() || (session_id != INVALID_SESSION_ID && session_id != self.id) {
            let id = self.id;
            self.handle_error();
            return Err(format!(
                "an incremental answer of session {id} (answered as {session_id}) lists partitions {outside:?} outside it"
            ));
        }
        (self.id, self.epoch) = if session_id == INVALID_SESSION_ID {
            // The broker closed the session; the answer still counts.
            (INVALID_SESSION_ID, INITIAL_EPOCH)
        } else {
            (self.id, next_epoch(self.epoch))
        };
        Ok(())
    }

    /// The fetch was lost (connection closed, timed out): the broker's
    /// session may be anywhere, so the next fetch is full and closes it.
    pub(super) fn handle_error(&mut self) {
        self.epoch = INITIAL_EPOCH;
    }

    fn start_over(&mut self, error_code: i16) {
        use kafka_protocol::ResponseError;
        if error_code == ResponseError::FetchSessionIdNotFound.code() {
            self.id = INVALID_SESSION_ID;
        }
        self.epoch = INITIAL_EPOCH;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_name_only_what_moved_once_a_session_is_made() {
        let mut s = FetchSession::default();
        let full = s.build(&[(1, 10, 0), (2, 20, 0)]);
        assert_eq!((full.id, full.epoch, full.send.len()), (0, 0, 2));
        s.handle_answer(0, 77, &[1, 2]).unwrap();
        let quiet = s.build(&[(1, 10, 0), (2, 20, 0)]);
        assert_eq!((quiet.id, quiet.epoch), (77, 1));
        assert!(quiet.send.is_empty() && quiet.forget.is_empty());
        s.handle_answer(0, 77, &[]).unwrap();
        let moved = s.build(&[(2, 25, 0), (3, 0, 1)]);
        assert_eq!(moved.epoch, 2);
        assert_eq!(moved.send, vec![(2, 25, 0), (3, 0, 1)]);
        assert_eq!(moved.forget, vec![1]);
    }

    /// The merged walk of `build` names what a search per partition names:
    /// partitions forgotten before, between and after the wanted ones,
    /// offsets and epochs that moved, new ones.
    #[test]
    fn an_incremental_fetch_sends_what_moved_and_forgets_what_went() {
        let held: Vec<Wanted> = vec![(1, 10, 0), (3, 30, 0), (5, 50, 2), (7, 70, 0), (9, 90, 0)];
        let cases: [Vec<Wanted>; 5] = [
            vec![(3, 30, 0), (5, 51, 2), (8, 0, 0)],
            vec![(0, 1, 0), (1, 10, 0), (9, 90, 0), (10, 0, 0)],
            vec![(5, 50, 3)],
            vec![],
            held.clone(),
        ];
        for wanted in cases {
            let mut s = FetchSession::default();
            s.build(&held);
            s.handle_answer(0, 7, &[1, 3, 5, 7, 9]).unwrap();
            let fetch = s.build(&wanted);
            let send: Vec<Wanted> = wanted
                .iter()
                .filter(|w| !held.contains(w))
                .copied()
                .collect();
            let forget: Vec<usize> = held
                .iter()
                .map(|h| h.0)
                .filter(|tp| !wanted.iter().any(|w| w.0 == *tp))
                .collect();
            assert_eq!(fetch.send, send, "wanted {wanted:?}");
            assert_eq!(fetch.forget, forget, "wanted {wanted:?}");
            let now: Vec<usize> = s.partitions.keys().copied().collect();
            assert_eq!(now, wanted.iter().map(|w| w.0).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_broker_that_drops_or_adds_partitions_is_caught() {
        let mut s = FetchSession::default();
        s.build(&[(1, 10, 0), (2, 20, 0)]);
        assert!(
            s.handle_answer(0, 77, &[1]).is_err(),
            "a full answer omitting one"
        );
        s.build(&[(1, 10, 0), (2, 20, 0)]);
        s.handle_answer(0, 77, &[1, 2]).unwrap();
        s.build(&[(1, 10, 0)]);
        assert!(
            s.handle_answer(0, 77, &[2]).is_err(),
            "a forgotten partition answered"
        );
        assert_eq!(s.build(&[(1, 10, 0)]).epoch, 0, "full again after");
    }

    #[test]
    fn errors_start_a_full_fetch_and_an_unknown_session_a_new_one() {
        let mut s = FetchSession::default();
        s.build(&[(1, 10, 0)]);
        s.handle_answer(0, 77, &[1]).unwrap();
        s.build(&[(1, 10, 0)]);
        let epoch_error = kafka_protocol::ResponseError::InvalidFetchSessionEpoch.code();
        s.handle_answer(epoch_error, 0, &[]).unwrap();
        let again = s.build(&[(1, 10, 0)]);
        assert_eq!(
            (again.id, again.epoch, again.send.len()),
            (77, 0, 1),
            "closes 77"
        );
        s.handle_answer(0, 78, &[1]).unwrap();
        s.build(&[(1, 10, 0)]);
        let not_found = kafka_protocol::ResponseError::FetchSessionIdNotFound.code();
        s.handle_answer(not_found, 0, &[]).unwrap();
        let fresh = s.build(&[(1, 10, 0)]);
        assert_eq!((fresh.id, fresh.epoch), (0, 0));
    }
}
