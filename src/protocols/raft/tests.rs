//! Unit tests of the Raft state machine (filled in below).
