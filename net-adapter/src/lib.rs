//! seedlog-net
