//! The disk: flushes, crashes (power cuts, torn tails, process kills),
//! and full disks.

use super::*;

impl World {
    pub(super) fn flush_done(&mut self, b: BrokerId, flush_id: u64, paths: Vec<String>) {
        let broker = &mut self.brokers[b];
        assert!(
            broker.flushes_in_flight > 0,
            "a flush completes that was never asked for"
        );
        broker.flushes_in_flight -= 1;
        let disk_full = self.brokers[b].disk_full;
        let BrokerState::Up(node) = &mut self.brokers[b].state else {
            return;
        };
        let mut error = None;
        if disk_full {
            error = Some(StorageError::NoSpace(
                paths.first().cloned().unwrap_or_default(),
            ));
        } else {
            for path in &paths {
                if let Err(e) = node.storage_mut().sync(path) {
                    error = Some(e);
                    break;
                }
            }
        }
        self.emit(Ev::FlushDone {
            broker: b,
            id: flush_id,
            ok: error.is_none(),
        });
        let input = match error {
            None => Input::FlushCompleted { flush_id },
            Some(error) => {
                self.stats.flush_failures += 1;
                Input::FlushFailed { flush_id, error }
            }
        };
        self.node_input(b, input);
        if self.brokers[b].stopping && self.brokers[b].flushes_in_flight == 0 {
            self.finish_stop(b, true);
        }
    }

    /// Stops broker `b`. A power cut (`power_loss`) forgets unsynced bytes
    /// (or tears one file's tail); a process kill keeps them, as the page
    /// cache outlives the process.
    pub(super) fn crash(&mut self, b: BrokerId, torn: bool, power_loss: bool) -> bool {
        let state = std::mem::replace(&mut self.brokers[b].state, BrokerState::Gone);
        let BrokerState::Up(node) = state else {
            self.brokers[b].state = state;
            return false;
        };
        let mut storage = node.into_storage();
        let mut torn_path = None;
        if torn && power_loss {
            let candidates: Vec<String> = storage
                .paths()
                .into_iter()
                .filter(|p| p.ends_with(".log") && storage.unsynced_bytes(p) > 0)
                .collect();
            if !candidates.is_empty() {
                let path = candidates[self.rng_disk.gen_range(0..candidates.len())].clone();
                let unsynced = storage.unsynced_bytes(&path);
                let keep = self.rng_disk.gen_range(1..=unsynced);
                storage.crash_torn(&path, keep);
                torn_path = Some(path);
            }
        }
        if !power_loss {
            self.stats.process_kills += 1;
        } else if torn_path.is_none() {
            storage.crash();
        } else {
            self.stats.torn_crashes += 1;
        }
        self.stats.crashes += 1;
        self.emit(Ev::Crash {
            broker: b,
            power_loss,
            torn: torn_path.as_deref(),
        });
        let cluster = self.cluster.is_some();
        let broker = &mut self.brokers[b];
        broker.state = BrokerState::Down(storage);
        broker.generation += 1;
        broker.timer_at = None;
        broker.crashed_since_observed = power_loss;
        broker.restarted_since_observed = true;
        broker.flushes_in_flight = 0;
        broker.stopping = false;
        broker.controlled_stop = false;
        broker.power_off = power_loss && cluster;
        if let Some(cluster) = self.cluster.as_mut() {
            if power_loss {
                cluster.replicas.broker_lost_power(b);
            }
            cluster.replicas.broker_restarted(b);
        }
        // Every connection dies with the process; clients see RST or silence.
        self.close_connections_of(b, power_loss);
        true
    }
}

pub(super) fn set_disk_full(state: &mut BrokerState, full: bool) {
    let storage = match state {
        BrokerState::Up(node) => node.storage_mut(),
        BrokerState::Down(storage) => storage,
        BrokerState::Gone => return,
    };
    let capacity = full.then(|| storage.used_bytes());
    storage.set_capacity_bytes(capacity);
}
