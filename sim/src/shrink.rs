//! Shrinking: delta debugging (Zeller's ddmin) over a failing seed's fault
//! schedule. Random faults are first materialized into an explicit list, so
//! the shrinker works on one list and the result is a plain scenario file.

use crate::scenario::{Fault, Scenario};
use crate::world::{materialize_faults, run, Bug, RunOptions};
use rand::SeedableRng;

#[derive(Debug)]
pub struct Shrunk {
    /// The checker the shrunk scenario still fails.
    pub checker: String,
    pub faults_before: usize,
    pub faults_after: usize,
    pub runs: u32,
    pub scenario: Scenario,
}

#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    #[error("seed {0} passes (or does not fail the checker asked for): nothing to shrink")]
    Passes(u64),
    #[error("seed {seed} fails {checker} only with its random faults; the explicit schedule passes (is the failure independent of faults?)")]
    NotReproducible { seed: u64, checker: String },
}

/// The scenario with random rates off and `faults` as its whole schedule.
pub fn with_schedule(scenario: &Scenario, faults: Vec<Fault>) -> Scenario {
    let mut s = scenario.clone();
    let random = &mut s.faults.random;
    // Rates only: the swarm draws the same numbers whatever they are, so the
    // rest of the run's parameters stay those of the original seed.
    random.crash_per_min = 0.0;
    random.process_kill_per_min = 0.0;
    random.connection_reset_per_min = 0.0;
    random.partition_per_min = 0.0;
    random.clog_per_min = 0.0;
    random.disk_full_per_min = 0.0;
    random.slow_flush_per_min = 0.0;
    random.pause_per_min = 0.0;
    random.skew_per_min = 0.0;
    random.isolate_per_min = 0.0;
    random.split_per_min = 0.0;
    random.shutdown_per_min = 0.0;
    s.faults.schedule = faults;
    s
}

/// Shrinks the failure of `checker` (by default the run's first
/// violation).
pub fn shrink(
    scenario: &Scenario,
    seed: u64,
    bugs: &[Bug],
    checker: Option<&str>,
    runs_max: u32,
) -> Result<Shrunk, ShrinkError> {
    let options = RunOptions {
        bugs: bugs.to_vec(),
        ..RunOptions::default()
    };
    let original = run(scenario, seed, &options);
    let found = original
        .violations
        .iter()
        .find(|v| checker.is_none_or(|c| v.checker == c));
    let Some(first) = found else {
        return Err(ShrinkError::Passes(seed));
    };
    let checker = first.checker.clone();
    let faults = original.schedule.clone();
    let faults_before = faults.len();
    let mut runs = 1;
    let fails = |faults: &[Fault], runs: &mut u32| -> bool {
        *runs += 1;
        let candidate = with_schedule(scenario, faults.to_vec());
        run(&candidate, seed, &options)
            .violations
            .iter()
            .any(|v| v.checker == checker)
    };
    if !fails(&faults, &mut runs) {
        return Err(ShrinkError::NotReproducible { seed, checker });
    }
    let mut current = faults;
    let mut n = 2usize;
    // ddmin: try each chunk alone, then each complement; refine otherwise.
    while current.len() >= 2 && runs < runs_max {
        let chunk = current.len().div_ceil(n);
        let chunks: Vec<Vec<Fault>> = current.chunks(chunk).map(<[Fault]>::to_vec).collect();
        let mut reduced = false;
        for c in &chunks {
            if runs >= runs_max {
                break;
            }
            if fails(c, &mut runs) {
                current = c.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && chunks.len() > 2 {
            for i in 0..chunks.len() {
                if runs >= runs_max {
                    break;
                }
                let complement: Vec<Fault> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, c)| c.iter().cloned())
                    .collect();
                if fails(&complement, &mut runs) {
                    current = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (n * 2).min(current.len());
        }
    }
    // Maybe no fault is needed at all.
    if !current.is_empty() && runs < runs_max && fails(&[], &mut runs) {
        current.clear();
    }
    let faults_after = current.len();
    let mut shrunk = with_schedule(scenario, current);
    shrunk.name = format!("{}-seed{seed}-shrunk", scenario.name);
    let flags: String = bugs
        .iter()
        .map(|b| format!(" --bug {}", b.name()))
        .collect();
    shrunk.description = format!(
        "Shrunk from {} seed {seed}{flags}: {faults_before} faults -> {faults_after}, still fails {checker}. \
         Run with: seedlog sim run <this file> --seed {seed}{flags}",
        scenario.name,
    );
    Ok(Shrunk {
        checker,
        faults_before,
        faults_after,
        runs,
        scenario: shrunk,
    })
}

/// The schedule a seed materializes, without running it.
pub fn schedule_of(scenario: &Scenario, seed: u64) -> Vec<Fault> {
    // Mirrors World::new's stream derivation.
    use rand::Rng;
    let mut master = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut rng_swarm = rand_chacha::ChaCha8Rng::seed_from_u64(master.gen());
    let mut rng_faults = rand_chacha::ChaCha8Rng::seed_from_u64(master.gen());
    let swarm = crate::swarm::Swarm::derive(&mut rng_swarm, scenario);
    materialize_faults(scenario, &swarm, &mut rng_faults)
}
