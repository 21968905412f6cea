//! Traces: one JSON line per event, and a running 64-bit hash of them.
//!
//! The hash is FNV-1a (over 8-byte words) of the header line and of a
//! compact binary encoding (postcard) of every event, so it is the same on
//! every platform and Rust version (std's `DefaultHasher` promises
//! neither). Two runs agree on the hash iff they agree on every event.
//! Events are hashed in binary, not as their JSON lines, because writing
//! JSON for every event was an eighth of a cluster run's instructions,
//! while most runs (explore, tests) keep no lines; JSON is written only
//! when a trace file or an in-memory trace is asked for.

use serde::{Deserialize, Serialize};
use std::io::Write;

/// FNV-1a, 64 bits, fed a word at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// FNV-1a over 8-byte little-endian words, then the tail bytes: a
    /// trace line is hashed with an eighth of the multiplications (it was
    /// 5% of a cluster run hashed a byte at a time). Deterministic for a
    /// given sequence of writes, which is all a trace hash needs.
    pub fn write(&mut self, bytes: &[u8]) {
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut words = bytes.chunks_exact(8);
        for word in words.by_ref() {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            self.0 = (self.0 ^ word).wrapping_mul(PRIME);
        }
        for b in words.remainder() {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(PRIME);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The first line of a trace: enough to re-run it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceHeader {
    pub seedlog_sim_version: String,
    pub seed: u64,
    pub bug: Option<String>,
    /// The scenario as TOML, so a trace replays without its file.
    pub scenario_toml: String,
}

/// Where trace lines go. The hash is always kept; lines only on request.
#[derive(Default)]
pub struct TraceSink {
    hash: Fnv64,
    lines: u64,
    memory: Option<Vec<String>>,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl TraceSink {
    pub fn new(keep_in_memory: bool, file: Option<std::fs::File>) -> TraceSink {
        TraceSink {
            hash: Fnv64::default(),
            lines: 0,
            memory: keep_in_memory.then(Vec::new),
            file: file.map(std::io::BufWriter::new),
        }
    }

    pub fn line(&mut self, line: String) {
        self.hash.write(line.as_bytes());
        self.hash.write(b"\n");
        self.lines += 1;
        if let Some(file) = &mut self.file {
            // A trace file that cannot be written is an operator error worth
            // stopping for: the user asked for it.
            writeln!(file, "{line}").expect("write trace file");
        }
        if let Some(memory) = &mut self.memory {
            memory.push(line);
        }
    }

    /// Whether lines are kept anywhere: if not, events need no JSON.
    pub fn wants_lines(&self) -> bool {
        self.file.is_some() || self.memory.is_some()
    }

    /// One event, as its binary encoding (hashed) and, when
    /// [`TraceSink::wants_lines`], as its JSON line (kept, not hashed). The
    /// simulator reuses both buffers; a line is only copied when kept.
    pub fn event(&mut self, encoded: &[u8], line: Option<&[u8]>) {
        self.hash.write(encoded);
        self.lines += 1;
        let Some(line) = line else {
            assert!(!self.wants_lines(), "a kept trace needs every line");
            return;
        };
        if let Some(file) = &mut self.file {
            file.write_all(line)
                .and_then(|()| file.write_all(b"\n"))
                .expect("write trace file");
        }
        if let Some(memory) = &mut self.memory {
            memory.push(String::from_utf8(line.to_vec()).expect("trace lines are UTF-8"));
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn finish(mut self) -> Option<Vec<String>> {
        if let Some(file) = &mut self.file {
            file.flush().expect("flush trace file");
        }
        self.memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_vectors() {
        let mut h = Fnv64::default();
        assert_eq!(h.finish(), 0xcbf29ce484222325);
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63dc4c8601ec8c);
    }
}
