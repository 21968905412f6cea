//! seedlog-sim
