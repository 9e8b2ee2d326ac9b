//! Benchmarks of the checker (filled in below).
