//! The lock clients of the coordination service: etcd's `concurrency.Mutex` (workload
//! `etcd-lock`) and ZooKeeper's lock recipe (workload `zk-lock`), one state machine with two
//! recipes ([`CoordLockClient`]).
//!
//! Sources: etcd's `clientv3/concurrency` (Session, Mutex and its `waitDeletes`), etcd's API
//! docs (leases, keep-alives, Txn); ZooKeeper's "Recipes and Solutions: Locks" and Programmer's
//! Guide (sessions, ephemeral sequential nodes, watches), Apache Curator's `InterProcessMutex`
//! (protection mode for lost create replies; ZOOKEEPER-1262); M. Kleppmann, "How to do
//! distributed locking" (2016), for fencing tokens; Jepsen's analysis of etcd 3.4.3 (2020), whose
//! finding is that etcd locks are leases, unsafe without fencing.
//!
//! # Sessions (both recipes)
//!
//! A client first opens a **session**: a lease of `ttl` (etcd) or `session_timeout`
//! (ZooKeeper), granted through the service's log ([`CoordCommand::LeaseGrant`]). It keeps the
//! session alive with a [`CoordMessage::KeepAlive`] to the leader every TTL/3 (a ping), trying
//! the next server when the last one went unanswered. The client's **own view** of its session
//! ends at (the send time of the oldest keep-alive not yet matched by an acknowledgement, or of
//! the grant) + TTL on its *local* clock: every acknowledgement is matched with the oldest
//! keep-alive still unmatched, so the view never lasts longer than the leader's. When that time
//! passes, or an acknowledgement says the lease is gone (`found: false`, Curator's LOST), the
//! client stops believing it holds the lock ([`StopReason::LeaseExpired`]), revokes the lease
//! (so its keys go at once if the service still has them) and opens a new session. The service
//! expires a lease on the leader's clock at (receipt of the last keep-alive) + TTL, which is
//! after the client's view ends as long as clocks advance at the same rate: this is the
//! **timing assumption** of both recipes. A process pause or a fast client clock breaks it.
//!
//! # etcd recipe (`concurrency.Mutex`)
//!
//! 1. Create the lock key `<prefix>/<lease in hex>` with the lease (a create that finds the
//!    key already there, e.g. a retry whose first answer was lost, reads its create revision).
//!    The key's create revision is `my_rev`: the **fencing token**.
//! 2. Read every key under `<prefix>/` (`Range`). If the client's key has the lowest create
//!    revision, it holds the lock.
//! 3. Else watch the key with the largest create revision below `my_rev` for its deletion,
//!    after the range's revision (etcd's `waitDeletes`), and on the event go back to 2.
//! 4. While holding, each write is a guarded transaction to the service:
//!    `Txn(If(CreateRevision(my key) == my_rev)).Then(Put("resource", value))`. A failed guard
//!    means the lock is lost: the client stops believing ([`StopReason::LockLost`]).
//! 5. Release: delete the key.
//!
//! # ZooKeeper recipe ("Recipes and Solutions: Locks")
//!
//! 1. Create an ephemeral sequential node `<path>/lock-` with the session (with
//!    `protected_create`, the name carries a GUID fresh per acquisition and session, as Curator's
//!    `_c_<guid>-lock-`). Its create revision (`czxid`) is the fencing token.
//! 2. `getChildren(<path>)` (`Range`), ordered by sequence number (create revision). The lowest
//!    holds the lock.
//! 3. Else watch only the **predecessor** (the next lower node) for its deletion, and on the
//!    event read the children again (a deleted predecessor may not mean the lock is free: it
//!    may have been a waiter whose session ended).
//! 4. While holding, writes go to the `fenced-storage` role with the token (as the `lock`
//!    client writes).
//! 5. Release: delete the node.
//!
//! A create whose answer is lost (no reply before `attempt_timeout`, or an `unknown` answer)
//! may have run. With `protected_create = true` (Curator's protection mode) the client lists
//! the children and takes the node carrying its GUID in its current session; only if none is
//! there does it send the create again (with the same request id, so the service runs it at
//! most once). With `false` it sends a second create, a new request, as ZooKeeper applications
//! do after `ConnectionLoss`: if the first one ran, its node is orphaned (ZOOKEEPER-1262), and
//! since the orphan belongs to the client's live session it is never deleted while the session
//! lives: the client waits behind its own orphan, and every client behind it, until the
//! session ends.
//!
//! The ordering guarantees the recipe relies on (a client sees its own create in its next
//! `getChildren`; a watch set after a read sees every later change) hold here because every
//! command goes through Raft's log and reads by ReadIndex, as ZAB gives them to ZooKeeper.
//!
//! # Requests
//!
//! One request is in flight at a time (the client is one sequential process). A request goes
//! to the last known leader; a `redirect` sends it to the hinted leader (at most three in a row
//! at once, then after `attempt_timeout`); an attempt without an answer after `attempt_timeout`
//! goes to the next server with the same request id (the service runs it once); after
//! `request_timeout` the request is given up and the client backs off.
//!
//! # History
//!
//! As the `lock` client's (see [`crate::families::lock::client`]): `acquire` (invoked when the
//! acquisition starts, ok with the token when the client holds), `write` (the token), `release`
//! (the token), on the same process ids; the mutex model reads `acquire` and `release`. A hold
//! that ends by a lost session or lock has no `release`: the mutex model knows no leases, so
//! scenarios where a lease ends under a holder switch linearizability off.

use std::collections::VecDeque;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{CoordAnswer, CoordCommand, CoordMessage, CoordOutcome, KeyInfo, LeaseId};
use crate::families::lock::client::{
    ClientConfig, back_off_delay, process_id, write_data, write_offsets,
};
use crate::families::lock::{
    CHECK_MUTUAL_EXCLUSION, Message as LockMessage, Observation, StopReason, check_duration,
    next_incarnation, pick, server_and_storage,
};
use crate::family::{
    self, Bug, Configured, HistoryTraits, NodeSetup, OptionError, RoleContext, WorkloadInfo,
};
use crate::history::{EventType, Function, HistoryEvent, ModelKind, Value};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// Disk key of the client's incarnation counter (process ids stay unique across restarts).
pub const EPOCH_KEY: &str = "coord-lock-client/epoch";
/// The resource key the etcd recipe's guarded writes put.
pub const RESOURCE_KEY: &str = "resource";
/// Redirects followed at once in a row; more wait for `attempt_timeout`.
const MAX_REDIRECTS_IN_A_ROW: u32 = 3;
/// Keep-alives remembered while unacknowledged (older ones are forgotten; by then the session
/// is over anyway: TTL/3 apart, eight span more than two TTLs).
const MAX_UNACKED_KEEPALIVES: usize = 8;
/// Longest lock key prefix or path (characters).
pub const MAX_DIR_CHARS: usize = 256;

/// Planted bug `lease-no-keepalive-check` (etcd-lock).
pub const BUG_LEASE_NO_KEEPALIVE_CHECK: Bug = Bug {
    name: "lease-no-keepalive-check",
    summary: "the etcd-lock holder ignores keep-alive failures and its lease's end, and writes with an unguarded put: it goes on writing after its lease expired",
    caught_by: CHECK_MUTUAL_EXCLUSION,
};
/// Planted bug `zk-watch-parent` (zk-lock).
pub const BUG_ZK_WATCH_PARENT: Bug = Bug {
    name: "zk-watch-parent",
    summary: "every zk-lock waiter watches the lock path (the parent) instead of its predecessor and reads the children again on every change: the herd effect",
    caught_by: "lock-bounds",
};
/// Planted bug `zk-no-session-check` (zk-lock).
pub const BUG_ZK_NO_SESSION_CHECK: Bug = Bug {
    name: "zk-no-session-check",
    summary: "a zk-lock holder whose session is over (by its clock or the ensemble's word) goes on holding and writing",
    caught_by: CHECK_MUTUAL_EXCLUSION,
};

/// Planted bugs of the etcd-lock client.
pub const ETCD_BUGS: &[Bug] = &[BUG_LEASE_NO_KEEPALIVE_CHECK];
/// Planted bugs of the zk-lock client.
pub const ZK_BUGS: &[Bug] = &[BUG_ZK_WATCH_PARENT, BUG_ZK_NO_SESSION_CHECK];

fn default_ttl() -> Duration {
    Duration::from_secs(10)
}
fn default_dir() -> String {
    "/lock".to_string()
}
fn default_attempt_timeout() -> Duration {
    Duration::from_millis(250)
}
fn default_true() -> bool {
    true
}

/// Options of an `etcd-lock` client group: the `lock` client's options ([`ClientConfig`], but
/// `validity_check`, which the lease replaces) plus these. Durations are on the client's clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EtcdLockConfig {
    /// The session lease's TTL (default 10s); keep-alives go every TTL/3.
    #[serde(default = "default_ttl")]
    pub ttl: Duration,
    /// The lock's key prefix (default `/lock`); lock keys are `<prefix>/<lease in hex>`.
    #[serde(default = "default_dir")]
    pub prefix: String,
    /// The options both recipes take (planted bugs: `lease-no-keepalive-check`).
    #[serde(flatten)]
    pub common: CommonOptions,
}

/// Options of a `zk-lock` client group: the `lock` client's options ([`ClientConfig`], but
/// `validity_check`) plus these. Durations are on the client's clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZkLockConfig {
    /// The session timeout (default 10s); pings go every timeout/3.
    #[serde(default = "default_ttl")]
    pub session_timeout: Duration,
    /// The lock node's path (default `/lock`); nodes are `<path>/lock-<sequence>`.
    #[serde(default = "default_dir")]
    pub path: String,
    /// Curator's protection mode (default true): a create whose answer is lost is followed by a
    /// listing that finds the node by its GUID; `false` creates again (ZOOKEEPER-1262).
    #[serde(default = "default_true")]
    pub protected_create: bool,
    /// The options both recipes take (planted bugs: `zk-watch-parent`, `zk-no-session-check`).
    #[serde(flatten)]
    pub common: CommonOptions,
}

/// The options of both coordination lock clients, besides their session's: the `lock`
/// client's ([`ClientConfig`], but `validity_check`), the attempt timeout and planted bugs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommonOptions {
    /// An attempt without an answer after this long goes to the next server (default 250ms).
    #[serde(default = "default_attempt_timeout")]
    pub attempt_timeout: Duration,
    /// Planted bugs, by name (each recipe has its own: [`ETCD_BUGS`], [`ZK_BUGS`]).
    #[serde(default)]
    pub bugs: Vec<String>,
    /// The `lock` client's options.
    #[serde(flatten)]
    pub client: ClientConfig,
}

/// Parses a client group's options into `T`, a config that flattens the `lock` client's
/// [`ClientConfig`] into its own keys ([`family::parse_flattened_options`]; `stop` is written
/// out only when given).
pub fn parse_flat<T>(options: &toml::Table) -> Result<T, Vec<OptionError>>
where
    T: serde::de::DeserializeOwned + Serialize,
{
    family::parse_flattened_options(options, &["stop"])
}

/// Which recipe a [`CoordLockClient`] runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RecipeKind {
    /// etcd's `concurrency.Mutex`.
    Etcd,
    /// ZooKeeper's lock recipe.
    Zk,
}

/// The planted bugs a client runs with.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientBugs {
    /// `lease-no-keepalive-check`.
    pub lease_no_keepalive_check: bool,
    /// `zk-watch-parent`.
    pub zk_watch_parent: bool,
    /// `zk-no-session-check`.
    pub zk_no_session_check: bool,
}

impl ClientBugs {
    /// The bugs named (names validated by [`family::check_bugs`]).
    pub fn from_names(names: &[String]) -> Self {
        let on = |b: &Bug| names.iter().any(|n| n == b.name);
        ClientBugs {
            lease_no_keepalive_check: on(&BUG_LEASE_NO_KEEPALIVE_CHECK),
            zk_watch_parent: on(&BUG_ZK_WATCH_PARENT),
            zk_no_session_check: on(&BUG_ZK_NO_SESSION_CHECK),
        }
    }

    /// The holder goes on when its session is over.
    fn holder_ignores_session_end(self) -> bool {
        self.lease_no_keepalive_check || self.zk_no_session_check
    }
}

/// One recipe's settings, from [`EtcdLockConfig`] or [`ZkLockConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// Which recipe.
    pub kind: RecipeKind,
    /// The session's TTL.
    pub ttl: Duration,
    /// The key prefix (etcd) or node path (ZooKeeper), without a trailing `/`.
    pub dir: String,
    /// Protection mode for lost create replies (ZooKeeper only).
    pub protected_create: bool,
    /// Per-attempt timeout.
    pub attempt_timeout: Duration,
    /// Planted bugs.
    pub bugs: ClientBugs,
    /// The `lock` client's options.
    pub client: ClientConfig,
}

impl From<&EtcdLockConfig> for Recipe {
    fn from(c: &EtcdLockConfig) -> Self {
        Recipe {
            kind: RecipeKind::Etcd,
            ttl: c.ttl,
            dir: c.prefix.trim_end_matches('/').to_string(),
            protected_create: true,
            attempt_timeout: c.common.attempt_timeout,
            bugs: ClientBugs::from_names(&c.common.bugs),
            client: c.common.client.clone(),
        }
    }
}

impl From<&ZkLockConfig> for Recipe {
    fn from(c: &ZkLockConfig) -> Self {
        Recipe {
            kind: RecipeKind::Zk,
            ttl: c.session_timeout,
            dir: c.path.trim_end_matches('/').to_string(),
            protected_create: c.protected_create,
            attempt_timeout: c.common.attempt_timeout,
            bugs: ClientBugs::from_names(&c.common.bugs),
            client: c.common.client.clone(),
        }
    }
}

/// What a recipe's options are called, for their validation.
struct OptionNames {
    ttl_key: &'static str,
    dir_key: &'static str,
    workload: &'static str,
    bugs: &'static [Bug],
}

const ETCD_NAMES: OptionNames = OptionNames {
    ttl_key: "ttl",
    dir_key: "prefix",
    workload: ETCD_LOCK_WORKLOAD_NAME,
    bugs: ETCD_BUGS,
};

const ZK_NAMES: OptionNames = OptionNames {
    ttl_key: "session_timeout",
    dir_key: "path",
    workload: ZK_LOCK_WORKLOAD_NAME,
    bugs: ZK_BUGS,
};

/// Every problem with the options both recipes share (none: valid), given as the `recipe`
/// they make, the key prefix or path as written, and the bug names.
fn validate_common(
    recipe: &Recipe,
    dir: &str,
    bugs: &[String],
    names: &OptionNames,
) -> Vec<OptionError> {
    let workload = names.workload;
    let mut errors = recipe.client.validate();
    if recipe.client.validity_check {
        errors.push(OptionError::at(
            "validity_check",
            format!("not an option of {workload}: the session's keep-alives decide how long a holder believes"),
        ));
    }
    check_duration(&mut errors, names.ttl_key, recipe.ttl, false);
    if recipe.ttl.as_nanos() > 0 && recipe.ttl.as_nanos() < 3_000_000 {
        errors.push(OptionError::at(
            names.ttl_key,
            format!(
                "expected at least 3ms (keep-alives go every third of it), found {}",
                recipe.ttl
            ),
        ));
    }
    check_duration(
        &mut errors,
        "attempt_timeout",
        recipe.attempt_timeout,
        false,
    );
    if !recipe.dir.starts_with('/') || recipe.dir.len() > MAX_DIR_CHARS {
        errors.push(OptionError::at(
            names.dir_key,
            format!("expected a path starting with / of at most {MAX_DIR_CHARS} characters, found {dir:?}"),
        ));
    }
    errors.extend(family::check_bugs(bugs, names.bugs, workload));
    errors
}

impl EtcdLockConfig {
    /// Every problem with these options (none: valid): the `lock` client's rules, `ttl`
    /// from 3ms to 1h, `attempt_timeout` positive and at most 1h, `prefix` a path of at most
    /// 256 characters, known bug names, no `validity_check`.
    pub fn validate(&self) -> Vec<OptionError> {
        validate_common(
            &Recipe::from(self),
            &self.prefix,
            &self.common.bugs,
            &ETCD_NAMES,
        )
    }
}

impl ZkLockConfig {
    /// Every problem with these options (none: valid): as [`EtcdLockConfig::validate`], with
    /// `session_timeout` and `path`.
    pub fn validate(&self) -> Vec<OptionError> {
        validate_common(
            &Recipe::from(self),
            &self.path,
            &self.common.bugs,
            &ZK_NAMES,
        )
    }
}

/// Timers of the coordination lock clients.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum CoordTimer {
    /// Start the next acquisition (after the start delay or think time).
    Acquire,
    /// Go on after a back-off (a request failed or timed out).
    Retry,
    /// The current attempt of `request` got no answer in `attempt_timeout`.
    Attempt {
        /// The request.
        request: u64,
    },
    /// `request` got no answer in `request_timeout`: give it up.
    RequestTimeout {
        /// The request.
        request: u64,
    },
    /// Send the next keep-alive of `lease` (every TTL/3).
    KeepAlive {
        /// The lease.
        lease: LeaseId,
    },
    /// `lease` may be over by the local clock.
    SessionEnd {
        /// The lease.
        lease: LeaseId,
    },
    /// One of the writes of the hold with `token` is due.
    WriteDue {
        /// The hold's token.
        token: u64,
    },
    /// The hold with `token` is over: release.
    HoldEnd {
        /// The hold's token.
        token: u64,
    },
}

/// The client's session, as it sees it.
#[derive(Clone, Debug)]
struct Session {
    lease: LeaseId,
    ttl_ns: u64,
    /// Its end on the local clock.
    ends_local_ns: i64,
    /// Send times of keep-alives not yet matched with an acknowledgement, oldest first.
    unacked: VecDeque<i64>,
    /// Keep-alive redirects followed since the last tick.
    redirects: u32,
    /// The service said it is gone, or it ended by the clock, while a buggy holder went on.
    over: bool,
}

/// The client's lock key (node).
#[derive(Clone, Debug, PartialEq)]
struct LockKey {
    key: String,
    /// Its create revision: the fencing token.
    revision: u64,
}

#[derive(Clone, Debug, PartialEq)]
enum Purpose {
    Grant,
    Create,
    /// A protected create's answer was lost: list the children to find the node by its GUID;
    /// if it is not there, send the create again as request `create_id`.
    FindMine {
        create_id: u64,
        create: CoordCommand,
    },
    Range,
    Write {
        token: u64,
    },
    Release {
        token: u64,
    },
}

/// The request in flight.
#[derive(Clone, Debug)]
struct Pending {
    id: u64,
    purpose: Purpose,
    /// The command, for the coordination service (`None`: a write to the fenced storage).
    command: Option<CoordCommand>,
    server: NodeId,
    redirects: u32,
    attempt_timer: Option<TimerId>,
    timeout_timer: TimerId,
    /// Local time of the first attempt.
    sent_ns: i64,
}

/// The hold the client believes it has.
#[derive(Clone, Debug)]
struct Hold {
    token: u64,
    writes_due: u32,
    ended: bool,
    believed: bool,
}

/// The watch the client waits on.
#[derive(Clone, Debug)]
struct Watching {
    id: u64,
    key: String,
    prefix: bool,
    after_revision: u64,
}

/// A lock client of the coordination service, running the etcd or the ZooKeeper recipe (see
/// the module docs). Build a fresh one at boot and after every restart.
#[derive(Debug)]
pub struct CoordLockClient {
    id: NodeId,
    servers: Vec<NodeId>,
    leader: NodeId,
    storage: Option<NodeId>,
    recipe: Recipe,
    epoch: u64,
    round: u64,
    next_request: u64,
    next_watch: u64,
    writes_done: u64,
    backoff_failures: u32,
    /// Waiting for a back-off to end before the next request.
    backing_off: bool,
    session: Option<Session>,
    key: Option<LockKey>,
    /// This acquisition's (and session's) GUID, in a protected ZooKeeper node's name.
    guid: u64,
    acquiring: bool,
    watching: Option<Watching>,
    pending: Option<Pending>,
    hold: Option<Hold>,
}

impl CoordLockClient {
    /// A client on node `id` of the coordination `servers` (at least one; `home` first),
    /// writing to `storage` (the ZooKeeper recipe's fenced storage; the etcd recipe writes
    /// through the service), running `recipe`.
    pub fn new(
        id: NodeId,
        servers: Vec<NodeId>,
        home: NodeId,
        storage: Option<NodeId>,
        recipe: Recipe,
    ) -> Self {
        assert!(!servers.is_empty(), "a coordination client needs servers");
        CoordLockClient {
            id,
            servers,
            leader: home,
            storage,
            recipe,
            epoch: 0,
            round: 0,
            next_request: 0,
            next_watch: 0,
            writes_done: 0,
            backoff_failures: 0,
            backing_off: false,
            session: None,
            key: None,
            guid: 0,
            acquiring: false,
            watching: None,
            pending: None,
            hold: None,
        }
    }

    fn process_id(&self) -> u64 {
        process_id(self.id, self.epoch, self.round)
    }

    fn config(&self) -> &ClientConfig {
        &self.recipe.client
    }

    fn may_acquire(&self, ctx: &Context<'_>) -> bool {
        self.config()
            .stop
            .is_none_or(|stop| ctx.local_time_ns() < stop.as_nanos() as i64)
    }

    fn next_server(&self, after: NodeId) -> NodeId {
        let pos = self.servers.iter().position(|&s| s == after).unwrap_or(0);
        self.servers[(pos + 1) % self.servers.len()]
    }

    fn record(
        &mut self,
        ctx: &mut Context<'_>,
        kind: EventType,
        f: Function,
        value: Value,
        error: Option<&str>,
    ) {
        let mut event = HistoryEvent::new(self.process_id(), kind, f, None, value);
        event.error = error.map(str::to_string);
        ctx.record(event);
        if kind == EventType::Info {
            self.round += 1; // Jepsen: a process with an unknown outcome never invokes again
        }
    }

    /// The name this acquisition's key (node) is created with.
    fn create_command(&self) -> CoordCommand {
        let lease = self.session.as_ref().map(|s| s.lease);
        let dir = &self.recipe.dir;
        let value = format!("c{}", self.id.0);
        match self.recipe.kind {
            RecipeKind::Etcd => CoordCommand::Create {
                key: format!("{dir}/{:x}", lease.unwrap_or(0)),
                value,
                lease,
                sequential: false,
            },
            RecipeKind::Zk => CoordCommand::Create {
                key: if self.recipe.protected_create {
                    format!("{dir}/_c_{}-lock-", self.guid_tag())
                } else {
                    format!("{dir}/lock-")
                },
                value,
                lease,
                sequential: true,
            },
        }
    }

    /// The GUID as written in a protected node's name.
    fn guid_tag(&self) -> String {
        format!("{:016x}", self.guid)
    }

    /// Sends `command` as a new request (or as request `reuse_id`), arming its timeouts.
    fn send_request(
        &mut self,
        ctx: &mut Context<'_>,
        purpose: Purpose,
        command: Option<CoordCommand>,
        reuse_id: Option<u64>,
    ) {
        let id = reuse_id.unwrap_or_else(|| {
            self.next_request += 1;
            self.next_request
        });
        let timeout_timer = ctx.set_timer(
            self.config().request_timeout.to_std(),
            CoordTimer::RequestTimeout { request: id },
        );
        let server = match command {
            Some(_) => self.leader,
            None => self
                .storage
                .expect("only the zk recipe writes to a storage"),
        };
        self.pending = Some(Pending {
            id,
            purpose,
            command,
            server,
            redirects: 0,
            attempt_timer: None,
            timeout_timer,
            sent_ns: ctx.local_time_ns(),
        });
        self.attempt(ctx);
    }

    /// Sends the pending request (again) to its current server.
    fn attempt(&mut self, ctx: &mut Context<'_>) {
        let attempt_timeout = self.recipe.attempt_timeout.to_std();
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        if let Some(t) = p.attempt_timer.take() {
            ctx.cancel_timer(t);
        }
        match (&p.command, &p.purpose) {
            (Some(command), _) => {
                ctx.send(
                    p.server,
                    CoordMessage::Request {
                        id: p.id,
                        command: command.clone(),
                    },
                );
                p.attempt_timer =
                    Some(ctx.set_timer(attempt_timeout, CoordTimer::Attempt { request: p.id }));
            }
            (None, Purpose::Write { token }) => {
                self.writes_done += 1;
                let data = write_data(self.id, *token, self.writes_done);
                ctx.send(
                    p.server,
                    LockMessage::Write {
                        request: p.id,
                        token: *token,
                        data,
                    },
                );
            }
            (None, _) => unreachable!("only writes go to the storage"),
        }
    }

    /// Ends the pending request (cancelling its timers) and returns it.
    fn finish(&mut self, ctx: &mut Context<'_>) -> Option<Pending> {
        let p = self.pending.take()?;
        if let Some(t) = p.attempt_timer {
            ctx.cancel_timer(t);
        }
        ctx.cancel_timer(p.timeout_timer);
        Some(p)
    }

    fn pending_is(&self, id: u64) -> bool {
        self.pending.as_ref().is_some_and(|p| p.id == id)
    }

    fn back_off(&mut self, ctx: &mut Context<'_>) {
        let delay = back_off_delay(ctx, &self.recipe.client, &mut self.backoff_failures);
        self.backing_off = true;
        ctx.set_timer(delay, CoordTimer::Retry);
    }

    /// Does what comes next, if nothing is in flight: open a session, create the key, read
    /// the keys, or do the hold's next write or its release.
    fn step(&mut self, ctx: &mut Context<'_>) {
        if self.pending.is_some() || self.backing_off {
            return;
        }
        if let Some(h) = self.hold.as_mut() {
            if !h.believed {
                h.writes_due = 0;
            }
            let token = h.token;
            if h.writes_due > 0 {
                h.writes_due -= 1;
                self.write(ctx, token);
            } else if h.ended {
                self.release(ctx, token);
            }
            return;
        }
        if self.session.is_none() {
            if self.acquiring || self.may_acquire(ctx) {
                let ttl_ms = self.recipe.ttl.as_nanos() / 1_000_000;
                self.send_request(
                    ctx,
                    Purpose::Grant,
                    Some(CoordCommand::LeaseGrant { ttl_ms }),
                    None,
                );
            }
            return;
        }
        if !self.acquiring || self.watching.is_some() {
            return;
        }
        match &self.key {
            None => {
                let create = self.create_command();
                self.send_request(ctx, Purpose::Create, Some(create), None);
            }
            Some(_) => {
                let prefix = format!("{}/", self.recipe.dir);
                self.send_request(ctx, Purpose::Range, Some(CoordCommand::range(prefix)), None);
            }
        }
    }

    fn write(&mut self, ctx: &mut Context<'_>, token: u64) {
        self.record(
            ctx,
            EventType::Invoke,
            Function::Write,
            Value::Int(token as i64),
            None,
        );
        match self.recipe.kind {
            RecipeKind::Etcd => {
                let key = self.key.as_ref().map(|k| k.key.clone()).unwrap_or_default();
                let guard_key = if self.recipe.bugs.lease_no_keepalive_check {
                    String::new()
                } else {
                    key
                };
                self.writes_done += 1;
                let command = CoordCommand::Txn {
                    guard_key,
                    guard_revision: token,
                    key: RESOURCE_KEY.to_string(),
                    value: write_data(self.id, token, self.writes_done),
                    writer: self.id,
                    token,
                };
                self.send_request(ctx, Purpose::Write { token }, Some(command), None);
            }
            RecipeKind::Zk => self.send_request(ctx, Purpose::Write { token }, None, None),
        }
    }

    fn release(&mut self, ctx: &mut Context<'_>, token: u64) {
        self.record(
            ctx,
            EventType::Invoke,
            Function::Release,
            Value::Int(token as i64),
            None,
        );
        if let Some(h) = self.hold.as_mut().filter(|h| h.believed) {
            h.believed = false;
            ctx.observe(Observation::StoppedHolding {
                token,
                why: StopReason::Released,
            });
        }
        let key = self.key.as_ref().map(|k| k.key.clone()).unwrap_or_default();
        self.send_request(
            ctx,
            Purpose::Release { token },
            Some(CoordCommand::Delete { key }),
            None,
        );
    }

    /// The hold is over (released, or lost): think, then acquire again. A buggy holder that
    /// went on past its session's end opens a new session now.
    fn end_hold(&mut self, ctx: &mut Context<'_>) {
        self.hold = None;
        self.key = None;
        if self.session.as_ref().is_some_and(|s| s.over) {
            self.drop_session(ctx);
        }
        ctx.set_timer(self.config().think_time.to_std(), CoordTimer::Acquire);
    }

    /// Ends the belief in the hold with `why` (if it is still believed).
    fn stop_believing(&mut self, ctx: &mut Context<'_>, why: StopReason) {
        if let Some(h) = self.hold.as_mut().filter(|h| h.believed) {
            h.believed = false;
            ctx.observe(Observation::StoppedHolding {
                token: h.token,
                why,
            });
        }
    }

    /// Forgets the session: revokes it (fire and forget, so its keys go at once if the service
    /// still has it) and drops the key and watch that belonged to it.
    fn drop_session(&mut self, ctx: &mut Context<'_>) {
        let Some(s) = self.session.take() else {
            return;
        };
        self.next_request += 1;
        ctx.send(
            self.leader,
            CoordMessage::Request {
                id: self.next_request,
                command: CoordCommand::LeaseRevoke { lease: s.lease },
            },
        );
        self.key = None;
        self.watching = None;
        // A new session creates under a new GUID (see `Purpose::FindMine`).
        self.guid = ctx.rng().r#gen::<u64>();
    }

    /// The session is over (by the local clock, or the service said so). A holder stops
    /// believing (unless a planted bug makes it go on) and the client starts over with a new
    /// session.
    fn session_over(&mut self, ctx: &mut Context<'_>) {
        let holding = self.hold.as_ref().is_some_and(|h| h.believed);
        if holding && self.recipe.bugs.holder_ignores_session_end() {
            if let Some(s) = self.session.as_mut() {
                s.over = true;
            }
            return;
        }
        self.stop_believing(ctx, StopReason::LeaseExpired);
        // What was in flight belonged to the old session.
        if let Some(p) = self.finish(ctx) {
            match p.purpose {
                Purpose::Write { token } => {
                    self.record(
                        ctx,
                        EventType::Info,
                        Function::Write,
                        Value::Int(token as i64),
                        Some("session-expired"),
                    );
                }
                Purpose::Release { token } => {
                    self.record(
                        ctx,
                        EventType::Info,
                        Function::Release,
                        Value::Int(token as i64),
                        Some("session-expired"),
                    );
                }
                _ => {}
            }
        }
        self.drop_session(ctx);
        if self.hold.is_some() {
            self.end_hold(ctx);
        } else {
            self.step(ctx);
        }
    }

    fn start_acquisition(&mut self, ctx: &mut Context<'_>) {
        self.acquiring = true;
        self.guid = ctx.rng().r#gen::<u64>();
        ctx.observe(Observation::Acquiring);
        self.record(ctx, EventType::Invoke, Function::Acquire, Value::Nil, None);
        self.step(ctx);
    }

    fn on_lease(&mut self, ctx: &mut Context<'_>, lease: LeaseId, ttl_ms: u64, sent_ns: i64) {
        let ttl_ns = ttl_ms.saturating_mul(1_000_000);
        self.session = Some(Session {
            lease,
            ttl_ns,
            ends_local_ns: sent_ns.saturating_add(ttl_ns as i64),
            unacked: VecDeque::new(),
            redirects: 0,
            over: false,
        });
        let left = (sent_ns + ttl_ns as i64 - ctx.local_time_ns()).max(0) as u64;
        ctx.set_timer(
            std::time::Duration::from_nanos(left),
            CoordTimer::SessionEnd { lease },
        );
        ctx.set_timer(
            std::time::Duration::from_nanos(ttl_ns / 3),
            CoordTimer::KeepAlive { lease },
        );
        self.step(ctx);
    }

    /// The keys under the lock's prefix, read at `revision`: hold if the client's key is the
    /// lowest, else watch (the predecessor, or the parent with `zk-watch-parent`).
    fn on_keys(&mut self, ctx: &mut Context<'_>, mut keys: Vec<KeyInfo>, revision: u64) {
        let Some(mine) = self.key.clone() else {
            return;
        };
        keys.sort_by_key(|k| k.create_revision);
        let Some(position) = keys.iter().position(|k| k.key == mine.key) else {
            // The key is gone: the service ended the session.
            self.session_over(ctx);
            return;
        };
        if position == 0 {
            self.acquiring = false;
            self.backoff_failures = 0;
            let token = mine.revision;
            self.hold = Some(Hold {
                token,
                writes_due: 0,
                ended: false,
                believed: true,
            });
            ctx.observe(Observation::Holding { token });
            self.record(
                ctx,
                EventType::Ok,
                Function::Acquire,
                Value::Int(token as i64),
                None,
            );
            for at in write_offsets(&self.recipe.client) {
                ctx.set_timer(at, CoordTimer::WriteDue { token });
            }
            ctx.set_timer(self.config().hold.to_std(), CoordTimer::HoldEnd { token });
            return;
        }
        let (key, prefix) = if self.recipe.bugs.zk_watch_parent {
            (format!("{}/", self.recipe.dir), true)
        } else {
            (keys[position - 1].key.clone(), false)
        };
        self.next_watch += 1;
        self.watching = Some(Watching {
            id: self.next_watch,
            key,
            prefix,
            after_revision: revision,
        });
        self.send_watch(ctx);
    }

    fn send_watch(&mut self, ctx: &mut Context<'_>) {
        if let Some(w) = &self.watching {
            ctx.send(
                self.leader,
                CoordMessage::Watch {
                    watch: w.id,
                    key: w.key.clone(),
                    prefix: w.prefix,
                    after_revision: w.after_revision,
                },
            );
        }
    }

    fn on_outcome(&mut self, ctx: &mut Context<'_>, p: Pending, outcome: CoordOutcome) {
        match (p.purpose, outcome) {
            (Purpose::Grant, CoordOutcome::Lease { lease, ttl_ms }) => {
                self.on_lease(ctx, lease, ttl_ms, p.sent_ns)
            }
            (Purpose::Create, CoordOutcome::Created { key, revision }) => {
                self.key = Some(LockKey { key, revision });
                self.step(ctx);
            }
            (Purpose::Create, CoordOutcome::Exists { create_revision }) => {
                // etcd: our own key, created by an attempt whose answer was lost.
                if let Some(CoordCommand::Create { key, .. }) = p.command {
                    self.key = Some(LockKey {
                        key,
                        revision: create_revision,
                    });
                }
                self.step(ctx);
            }
            (Purpose::Create, CoordOutcome::Error { .. }) => {
                // The lease is gone.
                self.session_over(ctx);
            }
            (Purpose::FindMine { create_id, create }, CoordOutcome::Keys { keys, .. }) => {
                // The node with this acquisition's GUID, of this session: a node of an earlier
                // session (whose create's answer was lost too) dies with that session.
                let tag = self.guid_tag();
                let lease = self.session.as_ref().map(|s| s.lease);
                match keys
                    .iter()
                    .find(|k| k.key.contains(&tag) && k.lease.is_some() && k.lease == lease)
                {
                    Some(k) => {
                        self.key = Some(LockKey {
                            key: k.key.clone(),
                            revision: k.create_revision,
                        });
                        self.step(ctx);
                    }
                    None => self.send_request(ctx, Purpose::Create, Some(create), Some(create_id)),
                }
            }
            (Purpose::Range, CoordOutcome::Keys { keys, revision }) => {
                self.on_keys(ctx, keys, revision)
            }
            (Purpose::Write { token }, CoordOutcome::TxnDone { succeeded, .. }) => {
                let value = Value::Int(token as i64);
                if succeeded {
                    self.record(ctx, EventType::Ok, Function::Write, value, None);
                    self.step(ctx);
                } else {
                    self.record(
                        ctx,
                        EventType::Fail,
                        Function::Write,
                        value,
                        Some("guard-failed"),
                    );
                    self.stop_believing(ctx, StopReason::LockLost);
                    self.drop_session(ctx);
                    self.end_hold(ctx);
                }
            }
            (Purpose::Release { token }, CoordOutcome::Deleted { .. }) => {
                let value = Value::Int(token as i64);
                self.record(ctx, EventType::Ok, Function::Release, value, None);
                self.end_hold(ctx);
            }
            (purpose, _) => {
                // A refused grant, or an answer of the wrong kind: a failed request.
                self.on_failed(ctx, purpose, EventType::Fail, "unexpected-outcome");
            }
        }
    }

    /// The pending request (already finished) failed (`Fail`: certainly not executed) or was
    /// given up (`Info`).
    fn on_failed(&mut self, ctx: &mut Context<'_>, purpose: Purpose, kind: EventType, error: &str) {
        match purpose {
            Purpose::Grant | Purpose::Create | Purpose::FindMine { .. } | Purpose::Range => {
                self.back_off(ctx);
            }
            Purpose::Write { token } => {
                self.record(
                    ctx,
                    kind,
                    Function::Write,
                    Value::Int(token as i64),
                    Some(error),
                );
                self.step(ctx);
            }
            Purpose::Release { token } => {
                self.record(
                    ctx,
                    kind,
                    Function::Release,
                    Value::Int(token as i64),
                    Some(error),
                );
                if kind == EventType::Info {
                    // The key may still be there: give the session up so it goes.
                    self.drop_session(ctx);
                }
                self.end_hold(ctx);
            }
        }
    }

    /// The current attempt got no answer (or an `unknown` one) in `attempt_timeout`: try the
    /// next server with the same request; a lost ZooKeeper create is handled as
    /// `protected_create` says.
    fn on_attempt_lost(&mut self, ctx: &mut Context<'_>) {
        let Some(server) = self.pending.as_ref().map(|p| p.server) else {
            return;
        };
        let next = self.next_server(server);
        self.leader = next;
        let p = self.pending.as_mut().expect("checked");
        p.attempt_timer = None;
        if p.purpose == Purpose::Create && self.recipe.kind == RecipeKind::Zk {
            let p = self.finish(ctx).expect("checked");
            let create = p.command.expect("a create has a command");
            if self.recipe.protected_create {
                let prefix = format!("{}/", self.recipe.dir);
                let find = Purpose::FindMine {
                    create_id: p.id,
                    create,
                };
                self.send_request(ctx, find, Some(CoordCommand::range(prefix)), None);
            } else {
                // ConnectionLoss: a new create, as applications do (ZOOKEEPER-1262).
                self.send_request(ctx, Purpose::Create, Some(create), None);
            }
            return;
        }
        let p = self.pending.as_mut().expect("checked");
        p.server = next;
        p.redirects = 0;
        self.attempt(ctx);
    }

    fn on_reply(&mut self, ctx: &mut Context<'_>, from: NodeId, id: u64, answer: CoordAnswer) {
        if !self.pending_is(id) {
            return; // a late or duplicate answer to a request that already ended
        }
        match answer {
            CoordAnswer::Done { outcome } => {
                self.leader = from;
                let p = self.finish(ctx).expect("checked");
                self.on_outcome(ctx, p, outcome);
            }
            CoordAnswer::Redirect { leader } => {
                let next = leader
                    .filter(|l| *l != from)
                    .unwrap_or_else(|| self.next_server(from));
                self.leader = next;
                let p = self.pending.as_mut().expect("checked");
                p.server = next;
                p.redirects += 1;
                if p.redirects <= MAX_REDIRECTS_IN_A_ROW {
                    self.attempt(ctx);
                }
            }
            CoordAnswer::Fail { error } => {
                let p = self.finish(ctx).expect("checked");
                self.on_failed(ctx, p.purpose, EventType::Fail, &error);
            }
            // The outcome is unknown, as if the answer were lost: the attempt timer (still
            // armed) handles it, so a server that keeps answering `unknown` is not flooded.
            CoordAnswer::Unknown { .. } => {}
        }
    }

    fn on_keep_alive_ack(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        lease: LeaseId,
        found: bool,
    ) {
        let Some(s) = self.session.as_mut().filter(|s| s.lease == lease) else {
            return;
        };
        self.leader = from;
        if !found {
            self.session_over(ctx);
            return;
        }
        if let Some(sent) = s.unacked.pop_front() {
            s.ends_local_ns = s.ends_local_ns.max(sent.saturating_add(s.ttl_ns as i64));
        }
    }

    fn send_keep_alive(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.local_time_ns();
        let leader = self.leader;
        if let Some(s) = self.session.as_mut() {
            if s.unacked.len() == MAX_UNACKED_KEEPALIVES {
                s.unacked.pop_front();
            }
            s.unacked.push_back(now);
            ctx.send(leader, CoordMessage::KeepAlive { lease: s.lease });
        }
    }
}

impl Process for CoordLockClient {
    type Message = CoordMessage;
    type Timer = CoordTimer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.epoch = next_incarnation(ctx.disk(), EPOCH_KEY);
        // The session opens at boot (a ZooKeeper client connects before it locks).
        self.step(ctx);
        let delay_ns = (self.config().start.as_nanos() as i64 - ctx.local_time_ns()).max(0) as u64;
        ctx.set_timer(
            std::time::Duration::from_nanos(delay_ns),
            CoordTimer::Acquire,
        );
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: CoordMessage) {
        match message {
            CoordMessage::Reply { id, answer } => self.on_reply(ctx, from, id, answer),
            CoordMessage::KeepAliveAck { lease, found, .. } => {
                self.on_keep_alive_ack(ctx, from, lease, found)
            }
            CoordMessage::KeepAliveRedirect { lease, leader } => {
                let Some(s) = self.session.as_mut().filter(|s| s.lease == lease) else {
                    return;
                };
                if s.redirects < MAX_REDIRECTS_IN_A_ROW {
                    s.redirects += 1;
                    self.leader = leader
                        .filter(|l| *l != from)
                        .unwrap_or_else(|| self.next_server(from));
                    self.send_keep_alive(ctx);
                }
            }
            CoordMessage::WatchEvent { watch, .. } => {
                let Some(w) = self.watching.as_ref().filter(|w| w.id == watch) else {
                    return; // an event of a watch the client no longer waits on
                };
                ctx.observe(Observation::Notified { key: w.key.clone() });
                self.watching = None;
                self.step(ctx);
            }
            CoordMessage::Request { .. }
            | CoordMessage::KeepAlive { .. }
            | CoordMessage::Watch { .. } => {}
        }
    }

    fn on_other(
        &mut self,
        ctx: &mut Context<'_>,
        _from: NodeId,
        message: crate::process::Message,
    ) -> Result<(), crate::process::Message> {
        let message = message.downcast::<LockMessage>()?;
        let (request, refused) = match message {
            LockMessage::WriteOk { request } => (request, None),
            LockMessage::WriteRefused { request, highest } => (request, Some(highest)),
            _ => return Ok(()),
        };
        if !self.pending_is(request) {
            return Ok(());
        }
        let p = self.finish(ctx).expect("checked");
        let Purpose::Write { token } = p.purpose else {
            return Ok(());
        };
        let value = Value::Int(token as i64);
        match refused {
            None => self.record(ctx, EventType::Ok, Function::Write, value, None),
            Some(highest) => {
                let error = format!("fenced: the storage has seen token {highest}");
                self.record(ctx, EventType::Fail, Function::Write, value, Some(&error));
            }
        }
        self.step(ctx);
        Ok(())
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: CoordTimer) {
        let holds = |s: &Self, token: u64| s.hold.as_ref().is_some_and(|h| h.token == token);
        match timer {
            CoordTimer::Acquire => {
                if !self.acquiring && self.hold.is_none() && self.may_acquire(ctx) {
                    self.start_acquisition(ctx);
                }
            }
            CoordTimer::Retry => {
                self.backing_off = false;
                self.step(ctx);
            }
            CoordTimer::Attempt { request } => {
                if self.pending_is(request) {
                    self.on_attempt_lost(ctx);
                }
            }
            CoordTimer::RequestTimeout { request } => {
                if self.pending_is(request) {
                    let p = self.finish(ctx).expect("checked");
                    self.on_failed(ctx, p.purpose, EventType::Info, "timeout");
                }
            }
            CoordTimer::KeepAlive { lease } => {
                let Some(s) = self.session.as_mut().filter(|s| s.lease == lease) else {
                    return;
                };
                s.redirects = 0;
                let ttl_ns = s.ttl_ns;
                if !s.unacked.is_empty() {
                    // The last keep-alive went unanswered: try the next server.
                    self.leader = self.next_server(self.leader);
                }
                self.send_keep_alive(ctx);
                // A watch may have been lost with its server: set it again (an event that
                // already happened is reported at once).
                self.send_watch(ctx);
                ctx.set_timer(
                    std::time::Duration::from_nanos(ttl_ns / 3),
                    CoordTimer::KeepAlive { lease },
                );
            }
            CoordTimer::SessionEnd { lease } => {
                let Some(s) = self.session.as_ref().filter(|s| s.lease == lease) else {
                    return;
                };
                let left = s.ends_local_ns - ctx.local_time_ns();
                if left > 0 {
                    ctx.set_timer(
                        std::time::Duration::from_nanos(left as u64),
                        CoordTimer::SessionEnd { lease },
                    );
                } else if !s.over {
                    self.session_over(ctx);
                }
            }
            CoordTimer::WriteDue { token } => {
                if holds(self, token) {
                    self.hold.as_mut().expect("checked").writes_due += 1;
                    self.step(ctx);
                }
            }
            CoordTimer::HoldEnd { token } => {
                if holds(self, token) {
                    self.hold.as_mut().expect("checked").ended = true;
                    self.step(ctx);
                }
            }
        }
    }
}

/// The `etcd-lock` workload's name.
pub const ETCD_LOCK_WORKLOAD_NAME: &str = "etcd-lock";
/// The `zk-lock` workload's name.
pub const ZK_LOCK_WORKLOAD_NAME: &str = "zk-lock";

/// The history both workloads record: the `lock` client's (the mutex model reads it).
const MUTEX_HISTORY: HistoryTraits = HistoryTraits {
    model: Some(ModelKind::Mutex),
    availability: false,
    stale_reads: false,
};

/// The `etcd-lock` workload: etcd's `concurrency.Mutex` on the coordination service. Its
/// acquire/release history follows the mutex model.
pub const ETCD_LOCK_WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: ETCD_LOCK_WORKLOAD_NAME,
    summary: "etcd's concurrency.Mutex: a lease kept alive, a key per client, lowest create revision holds (the fencing token), writes guarded by a Txn",
    history: MUTEX_HISTORY,
    bugs: ETCD_BUGS,
    configure: |ctx| configure::<EtcdLockConfig>(ctx, EtcdLockConfig::validate, false),
};

/// The `zk-lock` workload: ZooKeeper's lock recipe on the coordination service. Its
/// acquire/release history follows the mutex model.
pub const ZK_LOCK_WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: ZK_LOCK_WORKLOAD_NAME,
    summary: "ZooKeeper's lock recipe: ephemeral sequential nodes, each waiter watching its predecessor, the czxid as fencing token on a fenced storage",
    history: MUTEX_HISTORY,
    bugs: ZK_BUGS,
    configure: |ctx| configure::<ZkLockConfig>(ctx, ZkLockConfig::validate, true),
};

/// A client group's `configure`: parse its options as `T`, check them with `validate` and
/// its `talks_to` (a `fenced-storage` role required with `needs_storage`), and build each
/// client with the recipe `T` makes.
fn configure<T>(
    ctx: &RoleContext<'_>,
    validate: fn(&T) -> Vec<OptionError>,
    needs_storage: bool,
) -> Result<Configured, Vec<OptionError>>
where
    T: serde::de::DeserializeOwned + Serialize,
    for<'a> Recipe: From<&'a T>,
{
    let config: T = parse_flat(ctx.options)?;
    let (coord, storage) = coordination_and_storage(ctx, validate(&config), needs_storage)?;
    build(
        family::resolved_options(&config),
        Recipe::from(&config),
        coord,
        storage,
    )
}

/// The positions in `talks_to` of the group's `coordination` role and (required with
/// `needs_storage`) its `fenced-storage` role; or the option `errors` (when checking).
fn coordination_and_storage(
    ctx: &RoleContext<'_>,
    errors: Vec<OptionError>,
    needs_storage: bool,
) -> Result<(usize, Option<usize>), Vec<OptionError>> {
    server_and_storage(
        ctx,
        errors,
        super::server::PROTOCOL_NAME,
        needs_storage,
        if needs_storage {
            "a zk-lock client group talks to one coordination role and one fenced-storage role"
        } else {
            "an etcd-lock client group talks to one coordination role (and optionally a fenced-storage role, unused: its writes go through the service)"
        },
    )
}

fn build(
    options: toml::Table,
    recipe: Recipe,
    coord: usize,
    storage: Option<usize>,
) -> Result<Configured, Vec<OptionError>> {
    Ok(Configured {
        options,
        build: std::sync::Arc::new(move |setup: &NodeSetup| {
            let servers = setup.talks_to[coord].1.clone();
            let home = servers[setup.client_index as usize % servers.len()];
            let storage = storage.map(|part| pick(setup, part));
            Box::new(CoordLockClient::new(
                setup.id,
                servers,
                home,
                storage,
                recipe.clone(),
            ))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::lock::observed;
    use crate::process::{Effect, TestContext};

    const S1: NodeId = NodeId(0);
    const S2: NodeId = NodeId(1);
    const S3: NodeId = NodeId(2);
    const STORAGE: NodeId = NodeId(3);
    const ME: NodeId = NodeId(4);
    const MS: i64 = 1_000_000;
    const LEASE: LeaseId = 7;

    fn sent(effects: &[Effect]) -> Vec<(NodeId, CoordMessage)> {
        crate::process::sent_messages(effects)
    }

    fn requests(effects: &[Effect]) -> Vec<(NodeId, u64, CoordCommand)> {
        sent(effects)
            .into_iter()
            .filter_map(|(to, m)| match m {
                CoordMessage::Request { id, command } => Some((to, id, command)),
                _ => None,
            })
            .collect()
    }

    fn timers(effects: &[Effect]) -> Vec<(TimerId, CoordTimer)> {
        crate::process::timers_set(effects)
            .into_iter()
            .map(|(id, _, t)| (id, t))
            .collect()
    }

    struct Harness {
        c: CoordLockClient,
        tc: TestContext,
        /// Every effect so far.
        log: Vec<Effect>,
    }

    impl Harness {
        fn new(recipe: Recipe) -> Self {
            let storage = (recipe.kind == RecipeKind::Zk).then_some(STORAGE);
            let c = CoordLockClient::new(ME, vec![S1, S2, S3], S1, storage, recipe);
            Harness {
                c,
                tc: TestContext::new(ME, 3),
                log: Vec::new(),
            }
        }

        /// The effects since the last call (also kept in `log`).
        fn take(&mut self) -> Vec<Effect> {
            let e = self.tc.take_effects();
            self.log.extend(e.iter().cloned());
            e
        }

        fn last_request(&self) -> (NodeId, u64, CoordCommand) {
            requests(&self.log).pop().expect("a request was sent")
        }

        /// Answers the last request with `outcome` from its receiver.
        fn answer(&mut self, outcome: CoordOutcome) -> Vec<Effect> {
            let (to, id, _) = self.last_request();
            let answer = CoordAnswer::Done { outcome };
            self.c
                .on_message(&mut self.tc.ctx(), to, CoordMessage::Reply { id, answer });
            self.take()
        }

        /// Fires the last timer set that matches `pick`.
        fn fire(&mut self, pick: impl Fn(&CoordTimer) -> bool) -> Vec<Effect> {
            let (id, t) = timers(&self.log)
                .into_iter()
                .filter(|(_, t)| pick(t))
                .last()
                .expect("such a timer was set");
            self.c.on_timer(&mut self.tc.ctx(), id, t);
            self.take()
        }

        /// Booted, with session `LEASE` granted at local time 0, acquisition started.
        fn acquiring(recipe: Recipe) -> Self {
            let mut h = Harness::new(recipe);
            h.c.on_start(&mut h.tc.ctx());
            h.take();
            let ttl_ms = h.c.recipe.ttl.as_nanos() / 1_000_000;
            h.answer(CoordOutcome::Lease {
                lease: LEASE,
                ttl_ms,
            });
            h.fire(|t| *t == CoordTimer::Acquire);
            h
        }

        /// Holding with `token` (its key created with that revision and the lowest).
        fn holding(recipe: Recipe, token: u64) -> Self {
            let mut h = Harness::acquiring(recipe);
            let CoordCommand::Create { key, .. } = h.last_request().2 else {
                panic!("expected a create")
            };
            let key = format!(
                "{key}{}",
                if h.c.recipe.kind == RecipeKind::Zk {
                    "0000000009"
                } else {
                    ""
                }
            );
            h.answer(CoordOutcome::Created {
                key: key.clone(),
                revision: token,
            });
            let keys = vec![info(&key, token, LEASE), info("/lock/zz", token + 5, 99)];
            h.answer(CoordOutcome::Keys {
                keys,
                revision: token + 5,
            });
            h
        }
    }

    /// The one observation of a belief that ended.
    fn stopped(token: u64, why: StopReason) -> Vec<Observation> {
        vec![Observation::StoppedHolding { token, why }]
    }

    fn info(key: &str, create_revision: u64, lease: LeaseId) -> KeyInfo {
        KeyInfo {
            key: key.to_string(),
            create_revision,
            lease: Some(lease),
            value: None,
        }
    }

    fn etcd() -> Recipe {
        Recipe::from(&toml::from_str::<EtcdLockConfig>("").unwrap())
    }

    fn zk() -> Recipe {
        Recipe::from(&toml::from_str::<ZkLockConfig>("").unwrap())
    }

    fn with_bug(mut r: Recipe, bug: &str) -> Recipe {
        r.bugs = ClientBugs::from_names(&[bug.to_string()]);
        r
    }

    #[test]
    fn etcd_lowest_create_revision_holds_with_it_as_token() {
        let mut h = Harness::acquiring(etcd());
        assert_eq!(observed(&h.log), vec![Observation::Acquiring]);
        let (to, _, create) = h.last_request();
        assert_eq!(to, S1);
        assert_eq!(
            create,
            CoordCommand::Create {
                key: "/lock/7".into(),
                value: "c4".into(),
                lease: Some(LEASE),
                sequential: false
            }
        );
        let e = h.answer(CoordOutcome::Created {
            key: "/lock/7".into(),
            revision: 12,
        });
        assert_eq!(requests(&e)[0].2, CoordCommand::range("/lock/"));
        let keys = vec![info("/lock/9", 15, 9), info("/lock/7", 12, LEASE)];
        let e = h.answer(CoordOutcome::Keys { keys, revision: 15 });
        assert_eq!(observed(&e), vec![Observation::Holding { token: 12 }]);
    }

    #[test]
    fn etcd_create_that_finds_its_own_key_takes_its_create_revision() {
        let mut h = Harness::acquiring(etcd());
        h.answer(CoordOutcome::Exists {
            create_revision: 10,
        });
        assert_eq!(
            h.c.key,
            Some(LockKey {
                key: "/lock/7".into(),
                revision: 10
            })
        );
    }

    #[test]
    fn a_waiter_watches_only_its_predecessor() {
        let mut h = Harness::acquiring(zk());
        let CoordCommand::Create {
            key, sequential, ..
        } = h.last_request().2
        else {
            panic!()
        };
        assert!(sequential && key.starts_with("/lock/_c_") && key.ends_with("-lock-"));
        let mine = format!("{key}0000000030");
        h.answer(CoordOutcome::Created {
            key: mine.clone(),
            revision: 30,
        });
        let keys = vec![
            info("/lock/_c_aa-lock-0000000020", 20, 1),
            info(&mine, 30, LEASE),
            info("/lock/_c_bb-lock-0000000010", 10, 2),
            info("/lock/_c_cc-lock-0000000040", 40, 3),
        ];
        let e = h.answer(CoordOutcome::Keys { keys, revision: 41 });
        assert!(observed(&e).is_empty(), "not the lowest: no hold");
        let watches: Vec<_> = sent(&e)
            .into_iter()
            .filter(|(_, m)| matches!(m, CoordMessage::Watch { .. }))
            .collect();
        assert_eq!(
            watches,
            vec![(
                S1,
                CoordMessage::Watch {
                    watch: 1,
                    key: "/lock/_c_aa-lock-0000000020".into(),
                    prefix: false,
                    after_revision: 41
                }
            )]
        );
        // The predecessor goes: notified, read the children again.
        let event = CoordMessage::WatchEvent {
            watch: 1,
            key: "/lock/_c_aa-lock-0000000020".into(),
            deleted: true,
            revision: 42,
            compacted: false,
        };
        h.c.on_message(&mut h.tc.ctx(), S1, event);
        let e = h.take();
        assert_eq!(
            observed(&e),
            vec![Observation::Notified {
                key: "/lock/_c_aa-lock-0000000020".into()
            }]
        );
        assert!(matches!(
            requests(&e)[..],
            [(_, _, CoordCommand::Range { .. })]
        ));
    }

    #[test]
    fn with_zk_watch_parent_a_waiter_watches_the_whole_path() {
        let mut h = Harness::acquiring(with_bug(zk(), "zk-watch-parent"));
        h.answer(CoordOutcome::Created {
            key: "/lock/x-lock-0000000030".into(),
            revision: 30,
        });
        let keys = vec![
            info("/lock/y-lock-0000000020", 20, 1),
            info("/lock/x-lock-0000000030", 30, LEASE),
        ];
        let e = h.answer(CoordOutcome::Keys { keys, revision: 31 });
        assert!(sent(&e).iter().any(|(_, m)| matches!(
            m,
            CoordMessage::Watch { key, prefix: true, .. } if key == "/lock/"
        )));
    }

    #[test]
    fn session_end_by_the_local_clock_ends_the_belief_and_opens_a_new_session() {
        let mut h = Harness::holding(zk(), 9);
        // No keep-alive answered: the session ends at the grant's send time + 10 s.
        h.tc.local_time_ns = 10_000 * MS;
        let e = h.fire(|t| *t == CoordTimer::SessionEnd { lease: LEASE });
        assert_eq!(observed(&e), stopped(9, StopReason::LeaseExpired));
        let commands: Vec<CoordCommand> = requests(&e).into_iter().map(|r| r.2).collect();
        assert_eq!(commands, vec![CoordCommand::LeaseRevoke { lease: LEASE }]);
        // After the think time it acquires again, with a new session first.
        let e = h.fire(|t| *t == CoordTimer::Acquire);
        assert!(matches!(
            requests(&e)[..],
            [(_, _, CoordCommand::LeaseGrant { ttl_ms: 10_000 })]
        ));
    }

    #[test]
    fn an_acknowledged_keep_alive_extends_the_session_from_its_send_time() {
        let mut h = Harness::holding(etcd(), 9);
        h.tc.local_time_ns = 3_000 * MS;
        let e = h.fire(|t| *t == CoordTimer::KeepAlive { lease: LEASE });
        assert!(sent(&e).contains(&(S1, CoordMessage::KeepAlive { lease: LEASE })));
        h.tc.local_time_ns = 4_000 * MS; // the answer comes 1 s later: it counts from 3 s
        let ack = CoordMessage::KeepAliveAck {
            lease: LEASE,
            found: true,
            ttl_ms: 10_000,
        };
        h.c.on_message(&mut h.tc.ctx(), S1, ack);
        h.tc.local_time_ns = 10_000 * MS;
        let e = h.fire(|t| *t == CoordTimer::SessionEnd { lease: LEASE });
        assert!(observed(&e).is_empty(), "the session lasts until 13 s");
        h.tc.local_time_ns = 13_000 * MS;
        let e = h.fire(|t| *t == CoordTimer::SessionEnd { lease: LEASE });
        assert_eq!(observed(&e), stopped(9, StopReason::LeaseExpired));
    }

    #[test]
    fn a_keep_alive_answered_not_found_ends_the_belief() {
        let mut h = Harness::holding(etcd(), 9);
        let ack = CoordMessage::KeepAliveAck {
            lease: LEASE,
            found: false,
            ttl_ms: 0,
        };
        h.c.on_message(&mut h.tc.ctx(), S1, ack);
        assert_eq!(observed(&h.take()), stopped(9, StopReason::LeaseExpired));
    }

    #[test]
    fn with_zk_no_session_check_the_holder_goes_on_past_its_session() {
        let mut h = Harness::holding(with_bug(zk(), "zk-no-session-check"), 9);
        h.tc.local_time_ns = 10_000 * MS;
        let e = h.fire(|t| *t == CoordTimer::SessionEnd { lease: LEASE });
        assert!(observed(&e).is_empty(), "it goes on believing");
        let e = h.fire(|t| *t == CoordTimer::WriteDue { token: 9 });
        assert!(e.iter().any(|e| matches!(
            e,
            Effect::Send { to: STORAGE, message } if message.downcast_ref::<LockMessage>().is_some()
        )));
    }

    #[test]
    fn a_failed_guard_ends_the_belief() {
        let mut h = Harness::holding(etcd(), 9);
        h.fire(|t| *t == CoordTimer::WriteDue { token: 9 });
        let (_, _, txn) = h.last_request();
        assert!(matches!(
            txn,
            CoordCommand::Txn { ref guard_key, guard_revision: 9, token: 9, .. } if guard_key == "/lock/7"
        ));
        let e = h.answer(CoordOutcome::TxnDone {
            succeeded: false,
            revision: 20,
        });
        assert_eq!(observed(&e), stopped(9, StopReason::LockLost));
        assert!(h.c.hold.is_none());
    }

    #[test]
    fn with_lease_no_keepalive_check_the_holder_writes_unguarded_past_its_lease() {
        let mut h = Harness::holding(with_bug(etcd(), "lease-no-keepalive-check"), 9);
        let ack = CoordMessage::KeepAliveAck {
            lease: LEASE,
            found: false,
            ttl_ms: 0,
        };
        h.c.on_message(&mut h.tc.ctx(), S1, ack);
        assert!(observed(&h.take()).is_empty());
        h.fire(|t| *t == CoordTimer::WriteDue { token: 9 });
        assert!(matches!(
            h.last_request().2,
            CoordCommand::Txn { ref guard_key, token: 9, .. } if guard_key.is_empty()
        ));
    }

    #[test]
    fn a_protected_create_whose_answer_is_lost_finds_its_node_by_guid() {
        let mut h = Harness::acquiring(zk());
        let (_, create_id, create) = h.last_request();
        let CoordCommand::Create { key, .. } = create.clone() else {
            panic!()
        };
        let e = h.fire(|t| *t == CoordTimer::Attempt { request: create_id });
        assert!(
            matches!(requests(&e)[..], [(S2, _, CoordCommand::Range { .. })]),
            "{e:?}"
        );
        let mine = format!("{key}0000000005");
        let keys = vec![
            info("/lock/_c_00-lock-0000000003", 3, 1),
            info(&mine, 5, LEASE),
        ];
        let e = h.answer(CoordOutcome::Keys { keys, revision: 6 });
        assert_eq!(
            h.c.key,
            Some(LockKey {
                key: mine,
                revision: 5
            })
        );
        assert!(
            matches!(requests(&e)[..], [(_, _, CoordCommand::Range { .. })]),
            "no second create"
        );
    }

    #[test]
    fn a_protected_create_never_takes_a_node_of_an_earlier_session() {
        let mut h = Harness::acquiring(zk());
        let (_, create_id, create) = h.last_request();
        let CoordCommand::Create { key, .. } = create.clone() else {
            panic!()
        };
        h.fire(|t| *t == CoordTimer::Attempt { request: create_id });
        // A node with this GUID, but of lease 3, an earlier session: not ours.
        let stale = vec![info(&format!("{key}0000000005"), 5, 3)];
        let e = h.answer(CoordOutcome::Keys {
            keys: stale,
            revision: 6,
        });
        assert_eq!(h.c.key, None);
        assert_eq!(requests(&e), vec![(S2, create_id, create)]);
    }

    #[test]
    fn a_new_session_creates_under_a_new_guid() {
        let mut h = Harness::acquiring(zk());
        let CoordCommand::Create { key: first, .. } = h.last_request().2 else {
            panic!()
        };
        let ack = CoordMessage::KeepAliveAck {
            lease: LEASE,
            found: false,
            ttl_ms: 0,
        };
        h.c.on_message(&mut h.tc.ctx(), S1, ack);
        h.take();
        h.answer(CoordOutcome::Lease {
            lease: LEASE + 1,
            ttl_ms: 10_000,
        });
        let CoordCommand::Create { key: second, .. } = h.last_request().2 else {
            panic!("expected a create")
        };
        assert_ne!(first, second);
    }

    #[test]
    fn a_protected_create_not_found_is_sent_again_with_the_same_request_id() {
        let mut h = Harness::acquiring(zk());
        let (_, create_id, create) = h.last_request();
        h.fire(|t| *t == CoordTimer::Attempt { request: create_id });
        let e = h.answer(CoordOutcome::Keys {
            keys: vec![],
            revision: 6,
        });
        assert_eq!(requests(&e), vec![(S2, create_id, create)]);
    }

    #[test]
    fn an_unprotected_create_retry_orphans_the_first_node_and_waits_behind_it() {
        let mut r = zk();
        r.protected_create = false;
        let mut h = Harness::acquiring(r);
        let (_, first_id, create) = h.last_request();
        let e = h.fire(|t| *t == CoordTimer::Attempt { request: first_id });
        let [(_, second_id, ref again)] = requests(&e)[..] else {
            panic!("{e:?}")
        };
        assert_eq!(again, &create);
        assert_ne!(
            second_id, first_id,
            "a new request: the service runs it again"
        );
        // The first create ran (its answer was lost): node 5 is an orphan of this session.
        h.answer(CoordOutcome::Created {
            key: "/lock/lock-0000000006".into(),
            revision: 6,
        });
        let keys = vec![
            info("/lock/lock-0000000005", 5, LEASE),
            info("/lock/lock-0000000006", 6, LEASE),
        ];
        let e = h.answer(CoordOutcome::Keys { keys, revision: 6 });
        assert!(observed(&e).is_empty());
        assert!(
            sent(&e).iter().any(|(_, m)| matches!(
                m,
                CoordMessage::Watch { key, .. } if key == "/lock/lock-0000000005"
            )),
            "it waits behind its own orphan"
        );
    }

    #[test]
    fn a_redirect_sends_the_same_request_to_the_hinted_leader() {
        let mut h = Harness::acquiring(etcd());
        let (_, id, create) = h.last_request();
        let answer = CoordAnswer::Redirect { leader: Some(S3) };
        h.c.on_message(&mut h.tc.ctx(), S1, CoordMessage::Reply { id, answer });
        assert_eq!(requests(&h.take()), vec![(S3, id, create)]);
    }

    #[test]
    fn a_key_gone_from_the_listing_means_the_session_ended() {
        let mut h = Harness::acquiring(etcd());
        h.answer(CoordOutcome::Created {
            key: "/lock/7".into(),
            revision: 12,
        });
        let e = h.answer(CoordOutcome::Keys {
            keys: vec![info("/lock/9", 15, 9)],
            revision: 16,
        });
        let commands: Vec<CoordCommand> = requests(&e).into_iter().map(|r| r.2).collect();
        assert_eq!(
            commands,
            vec![
                CoordCommand::LeaseRevoke { lease: LEASE },
                CoordCommand::LeaseGrant { ttl_ms: 10_000 }
            ]
        );
    }

    #[test]
    fn release_deletes_the_key_and_ends_the_belief_when_sent() {
        let mut r = zk();
        r.client.writes_per_hold = 0;
        let mut h = Harness::holding(r, 9);
        let e = h.fire(|t| *t == CoordTimer::HoldEnd { token: 9 });
        assert_eq!(observed(&e), stopped(9, StopReason::Released));
        assert!(matches!(
            requests(&e)[..],
            [(_, _, CoordCommand::Delete { .. })]
        ));
    }

    #[test]
    fn options_take_the_lock_clients_and_reject_unknown_keys_and_bugs() {
        let table = |text: &str| text.parse::<toml::Table>().unwrap();
        let c: ZkLockConfig = parse_flat(&table(
            "session_timeout = \"2s\"\nhold = \"3s\"\nprotected_create = false\nstop = \"9s\"\nbugs = []",
        ))
        .unwrap();
        assert_eq!(c.session_timeout, Duration::from_secs(2));
        assert_eq!(c.common.client.hold, Duration::from_secs(3));
        assert!(!c.protected_create);
        assert!(c.validate().is_empty());
        let errors = parse_flat::<ZkLockConfig>(&table("sesion_timeout = \"2s\"")).unwrap_err();
        assert_eq!(errors[0].path, vec!["sesion_timeout".to_string()]);
        assert!(
            errors[0].message.contains("session_timeout"),
            "{}",
            errors[0].message
        );
        let bad: EtcdLockConfig =
            toml::from_str("validity_check = true\nbugs = [\"zk-watch-parent\"]\nprefix = \"x\"")
                .unwrap();
        let keys: Vec<String> = bad.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(keys, vec!["validity_check", "prefix", "bugs.0"]);
    }
}
