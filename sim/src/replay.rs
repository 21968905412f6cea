//! Replay: re-run a trace's scenario and seed, and prove the new trace is
//! the same line for line, or name the first line that differs.

use crate::scenario::Scenario;
use crate::trace::TraceHeader;
use crate::world::{run, RunOptions, RunReport};
use std::path::Path;

#[derive(Debug)]
pub enum ReplayOutcome {
    Identical {
        lines: u64,
        hash: u64,
    },
    /// 1-based line number, the recorded line and the replayed one.
    Differs {
        line: usize,
        recorded: String,
        replayed: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read trace {0}: {1}")]
    Read(String, std::io::Error),
    #[error("trace {0}: the first line is not a trace header: {1}")]
    Header(String, String),
    #[error("trace {path}: {source}")]
    Scenario {
        path: String,
        source: crate::scenario::ScenarioError,
    },
    #[error("trace {0}: {1}")]
    Bug(String, String),
}

pub fn replay(path: &Path) -> Result<(RunReport, ReplayOutcome), ReplayError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ReplayError::Read(shown.clone(), e))?;
    let recorded: Vec<&str> = text.lines().collect();
    let header: TraceHeader = serde_json::from_str(recorded.first().copied().unwrap_or(""))
        .map_err(|e| ReplayError::Header(shown.clone(), e.to_string()))?;
    let scenario = Scenario::from_toml(&header.scenario_toml, path).map_err(|source| {
        ReplayError::Scenario {
            path: shown.clone(),
            source,
        }
    })?;
    let bugs = match &header.bug {
        None => Vec::new(),
        Some(names) => crate::bugs::parse_names(names)
            .map_err(|message| ReplayError::Bug(shown.clone(), message))?,
    };
    let options = RunOptions {
        bugs,
        trace_file: None,
        keep_trace: true,
        core_logs: false,
    };
    let mut report = run(&scenario, header.seed, &options);
    let replayed = report.trace.take().expect("kept in memory");
    let lines = recorded.len().max(replayed.len());
    for i in 0..lines {
        let a = recorded.get(i).copied().unwrap_or("<end of trace>");
        let b = replayed
            .get(i)
            .map(String::as_str)
            .unwrap_or("<end of trace>");
        if a != b {
            return Ok((
                report,
                ReplayOutcome::Differs {
                    line: i + 1,
                    recorded: a.to_string(),
                    replayed: b.to_string(),
                },
            ));
        }
    }
    let outcome = ReplayOutcome::Identical {
        lines: report.trace_lines,
        hash: report.trace_hash,
    };
    Ok((report, outcome))
}
