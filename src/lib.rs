//! faultline: a deterministic distributed-systems simulator.
//!
//! Protocols run as sans-IO state machines ([`process`]) on nodes of a seeded simulated world
//! ([`sim`], built on madsim) that injects partitions, delays, loss, duplication, crashes, pauses
//! and clock faults, all described by a scenario file ([`scenario`]). Checkers ([`check`]) judge
//! the run record and [`report`] writes the results. Same scenario + seed + version = same run,
//! byte for byte. `docs/architecture.md` is the map of the code.

#[cfg(not(madsim))]
compile_error!(
    "faultline must be built in madsim simulation mode (`--cfg madsim`). The repository's \
     .cargo/config.toml sets it; a RUSTFLAGS environment variable overrides that file, so if you \
     set RUSTFLAGS, include `--cfg madsim` in it."
);

pub mod api;
pub mod check;
pub mod cli;
pub mod families;
pub mod family;
pub mod history;
pub mod outcome;
pub mod payload;
pub mod process;
pub mod report;
pub mod scenario;
pub mod shrink;
pub mod sim;
pub mod sweep;
mod wall;
