//! The lock family: a lock server that grants a lock for a TTL with a fencing token, a storage
//! resource that checks those tokens, and lock clients that acquire, write and release, from one
//! server (the `lock` workload) or from a majority of N servers (Redlock, the `redlock` workload,
//! see [`redlock`]).
//!
//! Sources: the Redis documentation, "Distributed Locks with Redis" (the single-instance pattern:
//! `SET resource_name my_random_value NX PX 30000`, and the Lua script that deletes the key only
//! if it still holds the caller's random value); M. Kleppmann, "How to do distributed locking"
//! (2016), for the process pause that breaks a lease and the fencing-token fix.
//!
//! # Algorithm
//!
//! - **Acquire** ([`server::LockServer`], role `lock-server`). A client sends
//!   [`Message::Acquire`] with a fresh random `value` that identifies this acquisition. If the
//!   lock is free (no holder, or the holder's deadline has passed on the server's *local* clock)
//!   the server grants it: it takes the next fencing token (the previous token + 1), stores the
//!   grant (holder, value, token, deadline = local now + `ttl`) and the token counter as one
//!   record on its disk, syncs it when `sync_grants = true`, arms an expiry timer of `ttl` on its
//!   local clock, and answers [`Message::Granted`] with the token and the TTL. Otherwise it
//!   answers [`Message::Busy`]. This is `SET key value NX PX ttl` plus an `INCR` of a token
//!   counter in the same write.
//! - **Release.** [`Message::Release`] carries the value and the token; the server frees the lock
//!   only if the value is the holder's (the Lua compare-and-delete), answering
//!   [`Message::Released`], else [`Message::NotOwner`].
//! - **Expiry.** When the expiry timer fires (or an acquire finds the deadline passed), the grant
//!   ends. The deadline is on the server's local clock, so a server clock that jumps forward or
//!   runs fast ends grants early in global time, while the holder still believes it holds.
//! - **Fencing** ([`storage::FencedStorage`], role `fenced-storage`). Every
//!   [`Message::Write`] carries the writer's token; with `check_fencing_token = true` the storage
//!   refuses a token lower than the highest it has accepted ([`Message::WriteRefused`]) and keeps
//!   that highest token on its synced disk.
//! - **Clients** ([`client::LockClient`], the `lock` workload). Loop: acquire (observing
//!   `acquiring` once per acquisition, retrying after `busy` or a timeout with capped
//!   exponential back-off and jitter), hold for `hold` of local time doing `writes_per_hold`
//!   writes with the token, spread over the hold, then release; think; repeat until `stop`.
//!   A client that is paused (a GC pause: its timers fire late) resumes believing it still
//!   holds the lock and goes on writing with its old token, exactly as in Kleppmann's article;
//!   only `validity_check = true` makes it stop writing once its local clock passes acquire
//!   time + TTL (the Redis docs' validity time).
//!
//! # Invariants
//!
//! - **Token monotonicity.** Every grant carries a token greater than every token granted before
//!   by that server, across restarts, as long as grants are synced (the counter is in the synced
//!   record). With `sync_grants = false` a crash loses the grants and the counter since the last
//!   sync, so the next grant may reuse a token and be given while the old holder still holds.
//! - **Mutual exclusion** (check `mutual-exclusion`, [`checks::mutual_exclusion`]): no two
//!   clients believe they hold the lock at overlapping global times. A lease on one clock cannot
//!   guarantee this against pauses and clock faults (Kleppmann); the check reports it, and the
//!   scenarios show when it breaks.
//! - **Fenced writes** (check `fenced-writes`, [`checks::fenced_writes`]): the storage never
//!   accepts a write whose token is lower than a token it accepted before, nor the highest
//!   token again from another client (a reused token). What fencing cannot prevent: a stale
//!   holder's write that reaches the storage *before* the new holder's first write carries the
//!   highest token seen so far and is accepted; no check on the storage can tell it apart, and
//!   only mutual exclusion reports the overlap.
//!
//! # Measurements
//!
//! [`metrics::Measurements`] measures every lock run from the same facts (violations, fenced
//! and unsafe writes, acquisition latency from a client's `acquiring` to its `holding`, critical
//! sections per second, notifications per release, time to detect a dead holder); the
//! `mutual-exclusion` result carries them as metrics, and the check `lock-bounds`
//! ([`bounds`]) bounds them when `[check.lock-bounds]` sets a bound.
//!
//! # Options (one table per role or client group; unknown keys are errors)
//!
//! - `lock-server` ([`ServerConfig`]): `ttl` (duration, default `"10s"`, at most 1h),
//!   `sync_grants` (default `true`), `restart_delay` (default `"0s"`, at most 1h: after a
//!   restart, answer `busy` to every acquire for that long), `bugs` (list of [`ServerBug`]
//!   names).
//! - `fenced-storage` ([`StorageConfig`]): `check_fencing_token` (default `true`), `bugs` (list of
//!   [`StorageBug`] names).
//! - `lock` clients ([`ClientConfig`]): `hold` (`"500ms"`), `writes_per_hold` (2, at most 1000),
//!   `think_time` (`"100ms"`), `request_timeout` (`"1s"`), `retry_delay_min` (`"50ms"`),
//!   `retry_delay_max` (`"1s"`), `start` (`"0s"`), `stop` (none), `validity_check` (`false`).
//!   Each client talks to one lock server and one storage, given to [`LockClient::new`].
//! - `redlock` clients ([`RedlockConfig`]): the `lock` options but `validity_check`, plus
//!   `server_timeout` (`"50ms"`), `drift_factor` (0.01) and `bugs` (list of [`RedlockBug`]
//!   names). Each client talks to every node of one `lock-server` role and one storage
//!   ([`LockClient::redlock`]).
//!
//! Each `validate()` returns [`OptionError`]s naming the key.
//!
//! # Planted bugs
//!
//! | name | where | what it breaks | caught by |
//! |---|---|---|---|
//! | `release-without-owner-check` | `lock-server` | any client's release frees the lock, so a paused ex-holder frees the new holder's lock | `mutual-exclusion` |
//! | `expiry-by-client-clock` | `lock-server` | the deadline is the client's clock reading + TTL, compared with the server's clock: a client clock behind the server's ends the grant at once | `mutual-exclusion` |
//! | `no-fencing` | `fenced-storage` | the storage ignores tokens even with `check_fencing_token = true` | `fenced-writes` |
//! | `redlock-forgetful-restart` | `lock-server` | `restart_delay` is ignored: a restarted server that forgot its grants grants at once | `mutual-exclusion` |
//! | `redlock-no-validity-check` | `redlock` clients | holds although the validity time (TTL - elapsed - drift) is not positive, and past its end | `mutual-exclusion` |
//! | `redlock-minority-ok` | `redlock` clients | holds with fewer than a majority of grants | `mutual-exclusion` |

pub mod bounds;
pub mod checks;
pub mod client;
pub mod coord;
pub mod metrics;
pub mod narrate;
pub mod redlock;
pub mod server;
pub mod storage;

use serde::{Deserialize, Serialize};

use crate::check::{self, CheckInfo};
use crate::family::{
    self, Bug, Configured, Family, HistoryTraits, NodeSetup, OptionError, ProtocolInfo,
    RoleContext, WorkloadInfo,
};
use crate::history::ModelKind;
use crate::process::NodeId;
use crate::sim::RunRecord;

pub use checks::{fenced_writes, mutual_exclusion};
pub use client::{ClientConfig, LockClient};
pub use redlock::{REDLOCK_WORKLOAD, RedlockBug, RedlockConfig, RedlockOptions};
pub use server::{LockServer, ServerConfig};
pub use storage::{FencedStorage, StorageConfig};

/// Name of the mutual-exclusion check.
pub const CHECK_MUTUAL_EXCLUSION: &str = "mutual-exclusion";
/// Name of the fenced-writes check.
pub const CHECK_FENCED_WRITES: &str = "fenced-writes";

/// Messages of the lock family. `request` numbers a client's requests, so a client can tell the
/// answer to its current request from a late answer to an earlier one.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// Client to lock server: take the lock (`SET key value NX PX ttl`).
    Acquire {
        /// The client's request number.
        request: u64,
        /// The owner's random value, fresh for every acquisition.
        value: u64,
        /// The client's local clock reading when it sent this, in nanoseconds. A correct server
        /// ignores it; the planted bug `expiry-by-client-clock` takes the deadline from it.
        client_now_ns: i64,
    },
    /// Lock server to client: the lock is yours.
    Granted {
        /// The acquire answered.
        request: u64,
        /// The fencing token of this grant.
        token: u64,
        /// How long the grant lasts on the server's clock, in nanoseconds.
        ttl_ns: u64,
    },
    /// Lock server to client: someone else holds the lock.
    Busy {
        /// The acquire answered.
        request: u64,
    },
    /// Client to lock server: give the lock back (the Lua compare-and-delete).
    Release {
        /// The client's request number.
        request: u64,
        /// The owner's value given at acquire.
        value: u64,
        /// The token of the grant being released.
        token: u64,
    },
    /// Lock server to client: the lock was released.
    Released {
        /// The release answered.
        request: u64,
    },
    /// Lock server to client: you do not hold the lock (it expired or went to someone else).
    NotOwner {
        /// The release answered.
        request: u64,
    },
    /// Client to storage: write `data` under fencing token `token`.
    Write {
        /// The client's request number.
        request: u64,
        /// The writer's fencing token.
        token: u64,
        /// What is written (opaque to the storage).
        data: String,
    },
    /// Storage to client: the write was accepted.
    WriteOk {
        /// The write answered.
        request: u64,
    },
    /// Storage to client: the token is lower than one already accepted.
    WriteRefused {
        /// The write answered.
        request: u64,
        /// The highest token the storage has accepted.
        highest: u64,
    },
}

/// Timers of the lock family.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum Timer {
    /// Lock server: the grant with `token` may have reached its deadline.
    Expire {
        /// The grant's token (stale once that grant has ended).
        token: u64,
    },
    /// Client: start the next acquire (after the start delay, think time or back-off).
    Acquire,
    /// Client: request `request` got no answer in `request_timeout`.
    RequestTimeout {
        /// The request.
        request: u64,
    },
    /// Client: one of the writes of the hold with `token` is due.
    WriteDue {
        /// The hold's token.
        token: u64,
    },
    /// Client: the hold with `token` is over; release.
    HoldEnd {
        /// The hold's token.
        token: u64,
    },
    /// Client (`validity_check = true`): acquire time + TTL has passed on the local clock.
    ValidityEnd {
        /// The hold's token.
        token: u64,
    },
}

/// Why a client stopped believing it holds the lock.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The client sent its release: from then on it writes nothing, so its hold ends there (not
    /// when the answer comes back, by which time the server may have granted the lock again).
    Released,
    /// `validity_check = true`: the local clock passed acquire time + TTL.
    ValidityExpired,
    /// The client crashed while it held the lock (set by the `mutual-exclusion` check from the
    /// run's crashes; a client never reports it).
    Crashed,
    /// `etcd-lock`, `zk-lock`: the client's lease (session) is over by its own clock (the send
    /// time of its last acknowledged keep-alive + TTL), or the service said it is gone.
    LeaseExpired,
    /// `etcd-lock`: a guarded write failed: the client's lock key no longer exists with its
    /// create revision (the lock was lost).
    LockLost,
}

/// Facts of the lock family for the checks. Server facts describe the server's state; client
/// facts (`holding`, `stopped-holding`) describe what the client believes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
pub enum Observation {
    /// Server: granted the lock to `client` with `token`, until `expires_local_ns` of the
    /// server's local clock (`ttl_ns` after the grant, unless `expiry-by-client-clock`).
    Granted {
        /// The new holder.
        client: NodeId,
        /// The grant's fencing token.
        token: u64,
        /// The TTL, in nanoseconds.
        ttl_ns: u64,
        /// The deadline on the server's local clock, in nanoseconds.
        expires_local_ns: i64,
    },
    /// Server: `client`'s grant with `token` ended by a release.
    Released {
        /// The holder whose grant ended.
        client: NodeId,
        /// Its token.
        token: u64,
    },
    /// Server: `client`'s grant with `token` reached its deadline.
    Expired {
        /// The holder whose grant ended.
        client: NodeId,
        /// Its token.
        token: u64,
    },
    /// Server: refused a release by `client` (token `token`) that does not own the lock.
    RefusedRelease {
        /// The client that asked.
        client: NodeId,
        /// The token it named.
        token: u64,
    },
    /// Server: booted from its disk with this state.
    Restored {
        /// The last token granted, as read from disk.
        last_token: u64,
        /// The holder on disk, with its token, if any.
        holder: Option<(NodeId, u64)>,
    },
    /// Storage: accepted a write of `client` with `token`.
    WriteAccepted {
        /// The writer.
        client: NodeId,
        /// Its token.
        token: u64,
    },
    /// Storage: refused a write of `client` with `token`, lower than `highest`.
    WriteRefused {
        /// The writer.
        client: NodeId,
        /// Its token.
        token: u64,
        /// The highest token accepted so far.
        highest: u64,
    },
    /// Server (the Raft leader's lessor, protocol `coordination`): `lease` went `ttl_ms` of the
    /// leader's local clock without a keep-alive; the leader proposes its revoke now (the keys
    /// attached to it go when the revoke is applied). The time a dead holder is detected.
    LeaseExpired {
        /// The lease (session).
        lease: u64,
        /// Its TTL in milliseconds.
        ttl_ms: u64,
    },
    /// Client: wants the lock from now on: the start of an acquisition, before its first
    /// attempt. Its next `holding` ends the wait (the acquisition latency).
    Acquiring,
    /// Client: a watch notification arrived (the ZooKeeper recipe, etcd's mutex): the watched
    /// `key` changed. Counted per release to measure the herd effect.
    Notified {
        /// The key (or prefix) the client watched.
        key: String,
    },
    /// Client: believes from now on that it holds the lock with `token`.
    Holding {
        /// The token of its grant.
        token: u64,
    },
    /// Client: no longer believes it holds the lock with `token`.
    StoppedHolding {
        /// The token of its grant.
        token: u64,
        /// Why.
        why: StopReason,
    },
}

/// Planted bugs of the lock server (`bugs = [...]` in its options).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerBug {
    /// Any client's release frees the lock (no compare of the owner's value).
    ReleaseWithoutOwnerCheck,
    /// The deadline is the client's clock reading in the acquire + TTL, compared with the
    /// server's own clock.
    ExpiryByClientClock,
    /// `restart_delay` is ignored: a restarted server grants at once, even when it forgot its
    /// grants (`sync_grants = false`).
    #[serde(rename = "redlock-forgetful-restart")]
    ForgetfulRestart,
}

/// Planted bugs of the fenced storage (`bugs = [...]` in its options).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageBug {
    /// Tokens are ignored even with `check_fencing_token = true`.
    NoFencing,
}

/// Every planted bug of the family, for `faultline list` and bug-name validation.
pub const BUGS: &[Bug] = &[
    Bug {
        name: "release-without-owner-check",
        summary: "the lock server frees the lock on any client's release, without comparing the owner's value",
        caught_by: CHECK_MUTUAL_EXCLUSION,
    },
    Bug {
        name: "expiry-by-client-clock",
        summary: "the lock server takes the grant's deadline from the client's clock reading + TTL and compares it with its own clock",
        caught_by: CHECK_MUTUAL_EXCLUSION,
    },
    Bug {
        name: "no-fencing",
        summary: "the storage ignores fencing tokens even with check_fencing_token = true",
        caught_by: CHECK_FENCED_WRITES,
    },
    Bug {
        name: "redlock-forgetful-restart",
        summary: "the lock server ignores restart_delay: restarted without its grants, it grants a lock a Redlock client still holds",
        caught_by: CHECK_MUTUAL_EXCLUSION,
    },
    Bug {
        name: "redlock-no-validity-check",
        summary: "the Redlock client holds even when its validity time (TTL - elapsed - drift) is not positive, and past its end",
        caught_by: CHECK_MUTUAL_EXCLUSION,
    },
    Bug {
        name: "redlock-minority-ok",
        summary: "the Redlock client holds with fewer than a majority of the lock servers",
        caught_by: CHECK_MUTUAL_EXCLUSION,
    },
    coord::client::BUG_LEASE_NO_KEEPALIVE_CHECK,
    coord::client::BUG_ZK_WATCH_PARENT,
    coord::client::BUG_ZK_NO_SESSION_CHECK,
];

impl ServerBug {
    /// Its entry in [`BUGS`].
    pub fn info(self) -> &'static Bug {
        match self {
            ServerBug::ReleaseWithoutOwnerCheck => &BUGS[0],
            ServerBug::ExpiryByClientClock => &BUGS[1],
            ServerBug::ForgetfulRestart => &BUGS[3],
        }
    }
}

impl StorageBug {
    /// Its entry in [`BUGS`].
    pub fn info(self) -> &'static Bug {
        match self {
            StorageBug::NoFencing => &BUGS[2],
        }
    }
}

pub use super::{MAX_OPTION_DURATION, check_duration, next_incarnation};

/// Reads a serde-JSON record from `key` of a disk, `None` if absent or unreadable.
fn read_record<T: for<'de> Deserialize<'de>>(
    disk: &crate::process::disk::Disk,
    key: &str,
) -> Option<T> {
    disk.read(key)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// Writes a serde-JSON record under `key`, and syncs it when `sync`.
fn write_record<T: Serialize>(
    disk: &mut crate::process::disk::Disk,
    key: &'static str,
    record: &T,
    sync: bool,
) {
    disk.write(
        key,
        serde_json::to_vec(record).expect("lock records always serialize"),
    );
    if sync {
        disk.sync();
    }
}

/// Observations for unit tests: the lock-family facts among recorded effects.
#[cfg(test)]
fn observed(effects: &[crate::process::Effect]) -> Vec<Observation> {
    crate::process::observations(effects)
}

/// Messages sent, with their receivers, for unit tests.
#[cfg(test)]
fn sent(effects: &[crate::process::Effect]) -> Vec<(NodeId, Message)> {
    crate::process::sent_messages(effects)
}

/// Timers set (delay in nanoseconds, payload), for unit tests.
#[cfg(test)]
fn timers(effects: &[crate::process::Effect]) -> Vec<(crate::process::TimerId, u64, Timer)> {
    crate::process::timers_set(effects)
        .into_iter()
        .map(|(id, delay, t)| (id, delay.as_nanos() as u64, t))
        .collect()
}

/// The registry entry: the lock server and the fenced storage, the `lock` and `redlock`
/// workloads, and the mutual-exclusion, fenced-writes and lock-bounds checks.
pub static FAMILY: Family = Family {
    name: "lock",
    summary: "a lock service with TTL leases and fencing tokens (Redis SET NX PX; Kleppmann's fencing), single-instance, Redlock over N servers, or etcd's and ZooKeeper's recipes on a Raft-replicated coordination service",
    protocols: &[LOCK_SERVER, FENCED_STORAGE, coord::server::PROTOCOL],
    workloads: &[
        LOCK_WORKLOAD,
        REDLOCK_WORKLOAD,
        coord::client::ETCD_LOCK_WORKLOAD,
        coord::client::ZK_LOCK_WORKLOAD,
    ],
    checks: &[MUTUAL_EXCLUSION_CHECK, FENCED_WRITES_CHECK, bounds::CHECK],
    decisions: None,
    narrator: Some(narrate::narrator),
    fold: None,
};

/// The `lock-server` protocol.
pub const LOCK_SERVER: ProtocolInfo = ProtocolInfo {
    name: "lock-server",
    summary: "grants one lock for a TTL with an increasing fencing token; owner-checked release; expiry by its local clock",
    serves: &[LOCK_WORKLOAD_NAME, redlock::REDLOCK_WORKLOAD_NAME],
    bugs: &[BUGS[0], BUGS[1], BUGS[3]],
    built_on: &[],
    configure: |ctx| {
        family::configure(
            ctx,
            |c: &ServerConfig, _| c.validate(),
            |setup, c| Box::new(LockServer::new(setup.id, c.clone())),
        )
    },
};

/// The `fenced-storage` protocol.
pub const FENCED_STORAGE: ProtocolInfo = ProtocolInfo {
    name: "fenced-storage",
    summary: "a resource that accepts writes carrying a fencing token and refuses stale tokens",
    serves: &[LOCK_WORKLOAD_NAME, redlock::REDLOCK_WORKLOAD_NAME],
    bugs: &[BUGS[2]],
    built_on: &[],
    configure: |ctx| {
        family::configure(
            ctx,
            |c: &StorageConfig, _| c.validate(),
            |setup, c| Box::new(FencedStorage::new(setup.id, c.clone())),
        )
    },
};

/// The lock workload's name.
pub const LOCK_WORKLOAD_NAME: &str = "lock";

/// The `lock` workload: clients that acquire, write with their token, and release. Its
/// acquire/release history follows the mutex model.
pub const LOCK_WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: LOCK_WORKLOAD_NAME,
    summary: "acquire with back-off, hold doing fenced writes, release (a paused holder resumes believing it holds)",
    history: HistoryTraits {
        model: Some(ModelKind::Mutex),
        availability: false,
        stale_reads: false,
    },
    bugs: &[],
    configure: configure_clients,
};

/// A `lock` client group talks to one `lock-server` role and one `fenced-storage` role; each
/// client uses the node of each that its index picks (round robin).
fn configure_clients(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let config: ClientConfig = family::parse_options(ctx.options)?;
    let (lock, storage) = lock_and_storage(ctx, config.validate())?;
    Ok(Configured {
        options: family::resolved_options(&config),
        build: std::sync::Arc::new(move |setup: &NodeSetup| {
            Box::new(LockClient::new(
                setup.id,
                pick(setup, lock),
                pick(setup, storage),
                config.clone(),
            ))
        }),
    })
}

/// The positions in `talks_to` of a lock client group's `lock-server` and `fenced-storage`
/// roles; an error if either is missing, or (when checking) the option `errors` found.
fn lock_and_storage(
    ctx: &RoleContext<'_>,
    errors: Vec<OptionError>,
) -> Result<(usize, usize), Vec<OptionError>> {
    let (lock, storage) = server_and_storage(
        ctx,
        errors,
        LOCK_SERVER.name,
        true,
        "a lock client group talks to one lock-server role and one fenced-storage role",
    )?;
    Ok((lock, storage.expect("required")))
}

/// The positions in `talks_to` of a client group's role running `server` and of its
/// `fenced-storage` role (`None` if it has none). Errors: `missing` (at `talks_to`) if the
/// server role is missing, or the storage role when `needs_storage`; else, when checking, the
/// option `errors` found. Shared by every lock client workload.
pub(crate) fn server_and_storage(
    ctx: &RoleContext<'_>,
    errors: Vec<OptionError>,
    server: &str,
    needs_storage: bool,
    missing: &str,
) -> Result<(usize, Option<usize>), Vec<OptionError>> {
    let position = |protocol: &str| ctx.talks_to.iter().position(|p| p.name == protocol);
    let storage = position(FENCED_STORAGE.name);
    let Some(server) = position(server).filter(|_| storage.is_some() || !needs_storage) else {
        return Err(vec![OptionError::of_role("talks_to", missing)]);
    };
    if ctx.checking && !errors.is_empty() {
        return Err(errors);
    }
    Ok((server, storage))
}

/// The node of `talks_to[part]` a client uses: picked round robin by its client index.
pub(crate) fn pick(setup: &NodeSetup, part: usize) -> NodeId {
    let nodes = &setup.talks_to[part].1;
    nodes[setup.client_index as usize % nodes.len()]
}

/// The lock family's facts of a run, for its checks.
fn facts(record: &RunRecord) -> Vec<checks::LockFact<'_>> {
    record
        .observations
        .iter()
        .filter_map(|o| o.get::<Observation>().map(|obs| (o.t_ns, o.node, obs)))
        .collect()
}

/// True if some client group of `scenario` runs a workload of the lock family.
pub fn has_lock_clients(scenario: &crate::scenario::Scenario) -> bool {
    scenario
        .clients
        .iter()
        .any(|g| FAMILY.workloads.iter().any(|w| w.name == g.workload))
}

/// True if `scenario` uses a coordination role as a service registry (it runs service instances
/// or backends that register) and runs no lock clients: no lock is held and no fenced write
/// made, so the lock checks do not apply.
fn is_service_registry(scenario: &crate::scenario::Scenario) -> bool {
    crate::families::registry::REGISTERING_PROTOCOLS
        .iter()
        .any(|p| scenario.runs_protocol(p))
        && !has_lock_clients(scenario)
}

/// (global ns, node) of every crash of the run.
fn crashes(record: &RunRecord) -> Vec<(u64, NodeId)> {
    record
        .lifecycle
        .iter()
        .filter(|l| l.kind == crate::sim::LifecycleKind::Crash)
        .map(|l| (l.t_ns, l.node))
        .collect()
}

/// The `mutual-exclusion` check.
pub const MUTUAL_EXCLUSION_CHECK: CheckInfo = CheckInfo {
    name: CHECK_MUTUAL_EXCLUSION,
    summary: "no two lock clients believe they hold the lock at overlapping times (server-side overlaps shown as evidence)",
    applies_to: |s| {
        (s.runs_protocol(LOCK_SERVER.name)
            || s.runs_protocol(coord::server::PROTOCOL_NAME)
            || has_lock_clients(s))
            && !is_service_registry(s)
    },
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run: |record| {
        let (facts, crashes) = (facts(record), crashes(record));
        let mut result = mutual_exclusion(&facts, &crashes, &record.topology.names, record.end_ns);
        // Every lock run reports the family's measurements here (`metrics` module).
        let measured = metrics::Measurements::measure(&facts, &crashes, record.end_ns);
        result.metrics.extend(measured.metrics());
        result
    },
};

/// The `fenced-writes` check.
pub const FENCED_WRITES_CHECK: CheckInfo = CheckInfo {
    name: CHECK_FENCED_WRITES,
    summary: "the storage never accepted a write with a token older than one it had accepted (fencing held)",
    applies_to: |s| s.runs_protocol(FENCED_STORAGE.name) && !is_service_registry(s),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run: |record| fenced_writes(&facts(record), &record.topology.names),
};
