//! The core's own notion of time.
//!
//! The core never reads a clock: every `handle*` call is given `now`. An
//! [`Instant`] counts nanoseconds from an epoch the driver chooses. The TCP
//! adapter uses the Unix epoch, so `Instant::unix_millis` doubles as Kafka's
//! wall-clock timestamp; the simulator starts its world at a fixed epoch of
//! its own choosing, so that runs are reproducible.

use serde::{Deserialize, Serialize};
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in nanoseconds since the driver's epoch.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    pub const ZERO: Instant = Instant { nanos: 0 };

    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant { nanos }
    }

    pub const fn from_millis(millis: u64) -> Instant {
        Instant {
            nanos: millis * 1_000_000,
        }
    }

    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// Milliseconds since the epoch, as Kafka timestamps are written.
    pub const fn unix_millis(self) -> i64 {
        (self.nanos / 1_000_000) as i64
    }

    /// The time elapsed since `earlier`, or zero if `earlier` is later
    /// (clocks handed in by a driver may step back; the core must not panic).
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        let nanos = u64::try_from(rhs.as_nanos()).expect("duration fits in u64 nanoseconds");
        Instant {
            nanos: self.nanos.saturating_add(nanos),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let a = Instant::from_millis(5);
        let b = a + Duration::from_millis(10);
        assert_eq!(b.unix_millis(), 15);
        assert_eq!(b - a, Duration::from_millis(10));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(
            Instant::from_nanos(u64::MAX) + Duration::from_secs(1),
            Instant::from_nanos(u64::MAX)
        );
    }
}
