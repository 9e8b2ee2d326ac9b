//! The `quorum-store` server: replica and coordinator in one process (see the family docs).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ring::{Level, Ring};
use super::state::{CausalContext, Counter, Dot, MergeRules, Stamp, State};
use super::{
    Answer, BUG_DROP_SIBLINGS, BUG_IGNORE_HINTS, Message, Observation, PROTOCOL, QOp, Timer,
};
use crate::families::kv;
use crate::family::{self, NodeSetup, OptionError, RoleContext};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// Most virtual nodes per node (the ring holds `nodes × vnodes` tokens).
pub const MAX_VNODES: u32 = 1024;

/// How replicas resolve concurrent writes (see [`super::state`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// Last write wins by the coordinator's local clock; served to `kv` clients (get, put).
    Lww,
    /// Dotted version vectors with siblings; served to `siblings` clients.
    VersionVectors,
    /// A PN-counter CRDT; served to `counter` clients.
    Counter,
}

impl Resolution {
    /// The name as written in a scenario (`"lww"`, `"version-vectors"`, `"counter"`).
    pub fn name(self) -> &'static str {
        match self {
            Resolution::Lww => "lww",
            Resolution::VersionVectors => "version-vectors",
            Resolution::Counter => "counter",
        }
    }
}

/// A `quorum-store` role's options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Replicas per key: the preference list's length (1..=the role's nodes).
    #[serde(default = "default_n")]
    pub n: u32,
    /// Replies a read waits for: "one", "quorum", "all" or 1..=n.
    #[serde(default = "default_level")]
    pub r: Level,
    /// Acknowledgements a write waits for: "one", "quorum", "all" or 1..=n.
    #[serde(default = "default_level")]
    pub w: Level,
    /// Tokens per node on the ring (1..=1024).
    #[serde(default = "default_vnodes")]
    pub vnodes: u32,
    /// Conflict resolution: "lww", "version-vectors" or "counter".
    #[serde(default = "default_resolution")]
    pub resolution: Resolution,
    /// A coordinator that has not gathered `r` replies or `w` acknowledgements by then answers
    /// `fail` (a read) or `info` (a write: some replicas may hold it). Local clock.
    #[serde(default = "default_coordinator_timeout")]
    pub coordinator_timeout: Duration,
    /// Sloppy quorum (Dynamo §4.6): after `fallback_after`, each preference-list node that has
    /// not answered is replaced by the next node on the ring, which holds the write as a hint.
    #[serde(default)]
    pub sloppy_quorum: bool,
    /// How long a coordinator waits for the preference list before using fallbacks (below
    /// `coordinator_timeout`).
    #[serde(default = "default_fallback_after")]
    pub fallback_after: Duration,
    /// Period at which a node offers its hints back to their owners (hinted handoff).
    #[serde(default = "default_handoff_interval")]
    pub handoff_interval: Duration,
    /// Read repair: after a read, replicas that answered an older state get the merged one.
    #[serde(default = "crate::scenario::yes")]
    pub read_repair: bool,
    /// Anti-entropy period (absent: off): each node compares per-key digests with one
    /// co-replica in turn and both exchange the states that differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_entropy_interval: Option<Duration>,
    /// Planted bugs to switch on (see `faultline list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
}

fn default_n() -> u32 {
    3
}
fn default_level() -> Level {
    Level::Quorum
}
fn default_vnodes() -> u32 {
    16
}
fn default_resolution() -> Resolution {
    Resolution::Lww
}
fn default_coordinator_timeout() -> Duration {
    Duration::from_millis(200)
}
fn default_fallback_after() -> Duration {
    Duration::from_millis(50)
}
fn default_handoff_interval() -> Duration {
    Duration::from_millis(200)
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("the empty options table deserializes")
    }
}

impl Config {
    /// N, R and W as counts.
    pub fn counts(&self) -> (u32, u32, u32) {
        (self.n, self.r.of(self.n), self.w.of(self.n))
    }

    /// The merge rules its bugs ask for.
    pub fn rules(&self) -> MergeRules {
        MergeRules {
            drop_siblings: self.bugs.iter().any(|b| b == BUG_DROP_SIBLINGS),
        }
    }
}

/// Every problem with `config` for a role of `nodes` nodes.
pub fn validate(config: &Config, ctx: &RoleContext<'_>) -> Vec<OptionError> {
    let mut errors = Vec::new();
    let nodes = ctx.nodes.len() as u32;
    if !(1..=nodes.max(1)).contains(&config.n) {
        errors.push(OptionError::at(
            "n",
            format!(
                "expected between 1 and the role's {nodes} nodes, found {}",
                config.n
            ),
        ));
    }
    for (key, level) in [("r", config.r), ("w", config.w)] {
        if let Level::Count(c) = level
            && !(1..=config.n).contains(&c)
        {
            errors.push(OptionError::at(
                key,
                format!("expected between 1 and n = {}, found {c}", config.n),
            ));
        }
    }
    if !(1..=MAX_VNODES).contains(&config.vnodes) {
        errors.push(OptionError::at(
            "vnodes",
            format!(
                "expected between 1 and {MAX_VNODES} (the limit), found {}",
                config.vnodes
            ),
        ));
    }
    errors.extend(crate::check::zero_durations(&[
        ("coordinator_timeout", config.coordinator_timeout),
        ("fallback_after", config.fallback_after),
        ("handoff_interval", config.handoff_interval),
    ]));
    if config.fallback_after >= config.coordinator_timeout {
        errors.push(OptionError::at(
            "fallback_after",
            format!(
                "expected less than coordinator_timeout ({})",
                config.coordinator_timeout
            ),
        ));
    }
    if let Some(d) = config.anti_entropy_interval
        && d.as_nanos() == 0
    {
        errors.push(OptionError::at(
            "anti_entropy_interval",
            "expected a positive duration (leave it out to switch anti-entropy off)",
        ));
    }
    errors.extend(family::check_bugs(
        &config.bugs,
        PROTOCOL.bugs,
        PROTOCOL.name,
    ));
    errors
}

/// Who asked, so the answer goes back in the right vocabulary.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// A `kv` client (LWW get and put).
    Kv,
    /// A `siblings` or `counter` client.
    Own,
}

#[derive(Clone, Debug)]
enum Phase {
    Write {
        state: State,
        acks: BTreeSet<NodeId>,
    },
    Read {
        replies: BTreeMap<NodeId, Option<State>>,
        answered: bool,
    },
}

#[derive(Clone, Debug)]
struct Pending {
    client: NodeId,
    request: u64,
    origin: Origin,
    op: QOp,
    key: String,
    /// The key's preference list, then its fallbacks, in ring order.
    walk: Vec<NodeId>,
    /// Nodes asked so far (preference list, then fallbacks).
    asked: Vec<NodeId>,
    phase: Phase,
}

/// One `quorum-store` node.
#[derive(Debug)]
pub struct Server {
    id: NodeId,
    /// This node's position in the role (its index in stamps, dots and counters).
    index: u32,
    peers: Vec<NodeId>,
    ring: Ring,
    config: Config,
    n: usize,
    r: usize,
    w: usize,
    rules: MergeRules,
    store: BTreeMap<String, State>,
    /// Hints held for other nodes: (owner, key) → state.
    hints: BTreeMap<(NodeId, String), State>,
    /// Counter mode: this node's own totals per key (added, subtracted).
    own: BTreeMap<String, (u64, u64)>,
    next_op: u64,
    ops: BTreeMap<u64, Pending>,
    anti_entropy_next: usize,
}

const DATA: &str = "data/";
const HINT: &str = "hint/";
const OWN: &str = "own/";

impl Server {
    /// A fresh server (its disk is loaded in `on_start`).
    pub fn new(setup: &NodeSetup, config: Config) -> Server {
        let (n, r, w) = config.counts();
        let index = setup
            .servers
            .iter()
            .position(|&s| s == setup.id)
            .expect("a server is one of its role's nodes") as u32;
        Server {
            id: setup.id,
            index,
            peers: setup.peers(),
            ring: Ring::new(&setup.servers, config.vnodes),
            rules: config.rules(),
            n: n as usize,
            r: r as usize,
            w: w as usize,
            config,
            store: BTreeMap::new(),
            hints: BTreeMap::new(),
            own: BTreeMap::new(),
            next_op: 0,
            ops: BTreeMap::new(),
            anti_entropy_next: 0,
        }
    }

    fn handoff_enabled(&self) -> bool {
        !self.config.bugs.iter().any(|b| b == BUG_IGNORE_HINTS)
    }

    fn is_replica(&self, key: &str, node: NodeId) -> bool {
        self.ring.preference(key, self.n).contains(&node)
    }

    /// Merges `state` into this node's copy of `key` (as a replica), durably; observes the new
    /// state if it changed. Returns true if it changed.
    fn store_merge(&mut self, ctx: &mut Context<'_>, key: &str, state: &State) -> bool {
        let merged = State::merged(self.store.get(key), Some(state), self.rules)
            .expect("merging a state gives a state");
        if self.store.get(key) == Some(&merged) {
            return false;
        }
        ctx.disk().write(
            format!("{DATA}{key}"),
            serde_json::to_vec(&merged).expect("states serialize"),
        );
        ctx.disk().sync();
        ctx.observe(Observation::Stored {
            key: key.to_string(),
            state: merged.clone(),
        });
        self.store.insert(key.to_string(), merged);
        true
    }

    /// Holds `state` for `owner` as a hint, durably.
    fn hint_merge(&mut self, ctx: &mut Context<'_>, owner: NodeId, key: &str, state: &State) {
        let slot = (owner, key.to_string());
        let merged = State::merged(self.hints.get(&slot), Some(state), self.rules)
            .expect("merging a state gives a state");
        if self.hints.get(&slot) == Some(&merged) {
            return;
        }
        ctx.disk().write(
            format!("{HINT}{}/{key}", owner.0),
            serde_json::to_vec(&merged).expect("states serialize"),
        );
        ctx.disk().sync();
        ctx.observe(Observation::Hinted {
            key: key.to_string(),
            owner,
        });
        self.hints.insert(slot, merged);
    }

    /// A replica's write: as the owner, or as a fallback holding a hint for `hint`.
    fn accept_write(
        &mut self,
        ctx: &mut Context<'_>,
        key: &str,
        state: &State,
        hint: Option<NodeId>,
    ) {
        match hint {
            Some(owner) if owner != self.id => self.hint_merge(ctx, owner, key, state),
            _ => {
                self.store_merge(ctx, key, state);
            }
        }
    }

    /// What this node answers a read of `key` with: its own copy, or as a fallback the merge
    /// of the hints it holds for the key.
    fn local_read(&self, key: &str, fallback: bool) -> Option<State> {
        if !fallback {
            return self.store.get(key).cloned();
        }
        self.hints
            .iter()
            .filter(|((_, k), _)| k == key)
            .fold(None, |acc, (_, s)| {
                State::merged(acc.as_ref(), Some(s), self.rules)
            })
    }

    /// The new version a write creates at this coordinator.
    fn new_version(&mut self, ctx: &mut Context<'_>, op: &QOp) -> Option<State> {
        match (self.config.resolution, op) {
            (Resolution::Lww, QOp::Put { value, .. }) => Some(State::Lww {
                stamp: Stamp {
                    time_ns: ctx.local_time_ns(),
                    node: self.index,
                },
                value: value.clone(),
            }),
            (
                Resolution::VersionVectors,
                QOp::Put {
                    key,
                    value,
                    context,
                },
            ) => {
                let dot = Dot {
                    node: self.index,
                    counter: State::next_counter(self.store.get(key), context, self.index),
                };
                ctx.observe(Observation::Versioned {
                    key: key.clone(),
                    value: value.clone(),
                    dot,
                    context: context.clone(),
                });
                // The coordinator keeps every version it made of the key in its own durable copy
                // (even if it is not a replica), which is where its next counter for the key
                // comes from, and ships that whole copy, as Riak does.
                let new = State::write(context, dot, value);
                self.store_merge(ctx, key, &new);
                self.store.get(key).cloned()
            }
            (Resolution::Counter, QOp::Add { key, delta }) => {
                let own = self.own.entry(key.clone()).or_insert((0, 0));
                if *delta >= 0 {
                    own.0 += delta.unsigned_abs();
                } else {
                    own.1 += delta.unsigned_abs();
                }
                let own = *own;
                ctx.disk()
                    .write(format!("{OWN}{key}"), format!("{} {}", own.0, own.1));
                ctx.disk().sync();
                Some(State::Counter(Counter {
                    p: [(self.index, own.0)].into(),
                    n: [(self.index, own.1)].into(),
                }))
            }
            _ => None,
        }
    }

    /// Coordinates one client request (Dynamo §4.5: any node coordinates what it receives).
    fn coordinate(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        request: u64,
        origin: Origin,
        op: QOp,
    ) {
        if self
            .ops
            .values()
            .any(|p| p.client == client && p.request == request)
        {
            return; // a duplicate of a request in progress
        }
        let supported = matches!(
            (self.config.resolution, &op),
            (Resolution::Lww, QOp::Put { .. } | QOp::Get { .. })
                | (
                    Resolution::VersionVectors,
                    QOp::Put { .. } | QOp::Get { .. }
                )
                | (Resolution::Counter, QOp::Add { .. } | QOp::Read { .. })
        ) && (origin == Origin::Own || self.config.resolution == Resolution::Lww);
        if !supported {
            let error = format!(
                "unsupported: resolution = \"{}\" does not serve this operation",
                self.config.resolution.name()
            );
            self.answer(ctx, client, request, origin, Answer::Fail { error });
            return;
        }
        let key = op.key().to_string();
        let walk = self.ring.walk(&key);
        let phase = match self.new_version(ctx, &op) {
            Some(state) => Phase::Write {
                state,
                acks: BTreeSet::new(),
            },
            None => Phase::Read {
                replies: BTreeMap::new(),
                answered: false,
            },
        };
        self.next_op += 1;
        let id = self.next_op;
        let targets: Vec<NodeId> = walk[..self.n.min(walk.len())].to_vec();
        self.ops.insert(
            id,
            Pending {
                client,
                request,
                origin,
                op,
                key,
                walk,
                asked: targets.clone(),
                phase,
            },
        );
        for t in targets {
            self.ask(ctx, id, t, None);
        }
        if self.config.sloppy_quorum {
            ctx.set_timer(
                self.config.fallback_after.to_std(),
                Timer::Fallback { op: id },
            );
        }
        ctx.set_timer(
            self.config.coordinator_timeout.to_std(),
            Timer::Coordinator { op: id },
        );
    }

    /// Sends op `id`'s write or read to `node` (`hint`: the owner it stands in for), or serves
    /// it locally if `node` is this one.
    fn ask(&mut self, ctx: &mut Context<'_>, id: u64, node: NodeId, hint: Option<NodeId>) {
        let Some(p) = self.ops.get(&id) else {
            return; // already answered (w = 1 met by the coordinator's own copy)
        };
        let key = p.key.clone();
        match &p.phase {
            Phase::Write { state, .. } => {
                let state = state.clone();
                if node == self.id {
                    self.accept_write(ctx, &key, &state, hint);
                    self.on_ack(ctx, id, node);
                } else {
                    ctx.send(
                        node,
                        Message::Write {
                            op: id,
                            key,
                            state,
                            hint,
                        },
                    );
                }
            }
            Phase::Read { .. } => {
                let fallback = hint.is_some();
                if node == self.id {
                    let state = self.local_read(&key, fallback);
                    self.on_read_reply(ctx, id, node, state);
                } else {
                    ctx.send(
                        node,
                        Message::Read {
                            op: id,
                            key,
                            fallback,
                        },
                    );
                }
            }
        }
    }

    fn on_ack(&mut self, ctx: &mut Context<'_>, id: u64, from: NodeId) {
        let w = self.w;
        let Some(p) = self.ops.get_mut(&id) else {
            return;
        };
        let Phase::Write { acks, .. } = &mut p.phase else {
            return;
        };
        acks.insert(from);
        if acks.len() >= w {
            let p = self.ops.remove(&id).expect("present");
            self.answer(ctx, p.client, p.request, p.origin, Answer::Done);
        }
    }

    fn on_read_reply(
        &mut self,
        ctx: &mut Context<'_>,
        id: u64,
        from: NodeId,
        state: Option<State>,
    ) {
        let (r, rules, read_repair) = (self.r, self.rules, self.config.read_repair);
        let Some(p) = self.ops.get_mut(&id) else {
            return;
        };
        let Phase::Read { replies, answered } = &mut p.phase else {
            return;
        };
        replies.insert(from, state);
        if replies.len() < r {
            return;
        }
        let merged = replies.values().fold(None, |acc, s| {
            State::merged(acc.as_ref(), s.as_ref(), rules)
        });
        let first = !*answered;
        *answered = true;
        let key = p.key.clone();
        let (client, request, origin) = (p.client, p.request, p.origin);
        let preference: Vec<NodeId> = p.walk[..self.n.min(p.walk.len())].to_vec();
        let stale: Vec<NodeId> = replies
            .iter()
            .filter(|(n, s)| preference.contains(n) && **s != merged)
            .map(|(n, _)| *n)
            .collect();
        let op = p.op.clone();
        if first {
            let answer = match (&op, &merged) {
                (QOp::Read { .. }, Some(State::Counter(c))) => Answer::Count { value: c.value() },
                (QOp::Read { .. }, _) => Answer::Count { value: 0 },
                (_, Some(s)) => Answer::Siblings {
                    values: s.values(),
                    context: s.context(),
                },
                (_, None) => Answer::Siblings {
                    values: Vec::new(),
                    context: CausalContext::default(),
                },
            };
            self.answer(ctx, client, request, origin, answer);
        }
        // Read repair (Dynamo §5): replicas that answered an older state get the merge, now
        // and for every later reply until the coordinator's timeout.
        if read_repair && let Some(merged) = merged {
            for node in stale {
                if node == self.id {
                    self.store_merge(ctx, &key, &merged);
                } else {
                    ctx.send(
                        node,
                        Message::Repair {
                            key: key.clone(),
                            state: merged.clone(),
                        },
                    );
                }
            }
        }
    }

    fn answer(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        request: u64,
        origin: Origin,
        answer: Answer,
    ) {
        match origin {
            Origin::Own => ctx.send(
                client,
                super::ClientMessage::Reply(super::Reply {
                    id: request,
                    answer,
                }),
            ),
            Origin::Kv => {
                let outcome = match answer {
                    Answer::Done => kv::Outcome::Ok {
                        value: kv::OpValue::Done,
                    },
                    Answer::Siblings { values, .. } => kv::Outcome::Ok {
                        value: kv::OpValue::Value(values.into_iter().next()),
                    },
                    Answer::Count { value } => kv::Outcome::Ok {
                        value: kv::OpValue::Value(Some(value.to_string())),
                    },
                    Answer::Fail { error } => kv::Outcome::Fail { error },
                    Answer::Unknown { error } => kv::Outcome::Unknown { error },
                };
                kv::ClientContext::reply(
                    ctx,
                    client,
                    kv::Reply {
                        id: request,
                        outcome,
                    },
                );
            }
        }
    }

    /// Sloppy quorum: every preference-list node that has not answered yet is replaced by the
    /// next fallback on the ring (Dynamo §4.6), which gets the write with a hint naming it.
    fn use_fallbacks(&mut self, ctx: &mut Context<'_>, id: u64) {
        let Some(p) = self.ops.get(&id) else {
            return;
        };
        let answered: BTreeSet<NodeId> = match &p.phase {
            Phase::Write { acks, .. } => acks.clone(),
            Phase::Read { replies, answered } => {
                if *answered {
                    return;
                }
                replies.keys().copied().collect()
            }
        };
        let missing: Vec<NodeId> = p.walk[..self.n.min(p.walk.len())]
            .iter()
            .copied()
            .filter(|n| !answered.contains(n))
            .collect();
        let mut fallbacks = p.walk[self.n.min(p.walk.len())..]
            .iter()
            .copied()
            .filter(|f| !p.asked.contains(f))
            .collect::<Vec<_>>()
            .into_iter();
        let mut plan = Vec::new();
        for owner in missing {
            let Some(f) = fallbacks.next() else { break };
            plan.push((f, owner));
        }
        if let Some(p) = self.ops.get_mut(&id) {
            p.asked.extend(plan.iter().map(|(f, _)| *f));
        }
        for (f, owner) in plan {
            self.ask(ctx, id, f, Some(owner));
        }
    }

    fn on_coordinator_timeout(&mut self, ctx: &mut Context<'_>, id: u64) {
        let Some(p) = self.ops.remove(&id) else {
            return;
        };
        let answer = match &p.phase {
            Phase::Read { answered: true, .. } => return,
            Phase::Read { replies, .. } => Answer::Fail {
                error: format!("timeout: {} of r = {} replies", replies.len(), self.r),
            },
            // Some replicas may hold the write: its outcome is unknown.
            Phase::Write { acks, .. } => Answer::Unknown {
                error: format!("timeout: {} of w = {} acknowledgements", acks.len(), self.w),
            },
        };
        self.answer(ctx, p.client, p.request, p.origin, answer);
    }

    /// Hinted handoff: offer every hint to its owner.
    fn hand_off(&mut self, ctx: &mut Context<'_>) {
        for ((owner, key), state) in &self.hints {
            ctx.send(
                *owner,
                Message::Handoff {
                    key: key.clone(),
                    state: state.clone(),
                },
            );
        }
    }

    /// Anti-entropy: send one co-replica (in turn) the digests of the keys both replicate.
    fn anti_entropy(&mut self, ctx: &mut Context<'_>) {
        if self.peers.is_empty() {
            return;
        }
        let peer = self.peers[self.anti_entropy_next % self.peers.len()];
        self.anti_entropy_next += 1;
        let entries: Vec<(String, u64)> = self
            .store
            .iter()
            .filter(|(k, _)| self.is_replica(k, peer) && self.is_replica(k, self.id))
            .map(|(k, s)| (k.clone(), s.digest()))
            .collect();
        ctx.send(peer, Message::Digest { entries });
    }

    fn on_digest(&mut self, ctx: &mut Context<'_>, from: NodeId, entries: Vec<(String, u64)>) {
        let theirs: BTreeMap<String, u64> = entries.into_iter().collect();
        let mut states = Vec::new();
        let mut want = Vec::new();
        for (key, digest) in &theirs {
            if !self.is_replica(key, self.id) {
                continue;
            }
            match self.store.get(key) {
                Some(mine) if mine.digest() == *digest => {}
                Some(mine) => {
                    states.push((key.clone(), mine.clone()));
                    want.push(key.clone());
                }
                None => want.push(key.clone()),
            }
        }
        for (key, state) in &self.store {
            if !theirs.contains_key(key) && self.is_replica(key, from) {
                states.push((key.clone(), state.clone()));
            }
        }
        if !states.is_empty() || !want.is_empty() {
            ctx.send(from, Message::Sync { states, want });
        }
    }

    fn on_sync(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        states: Vec<(String, State)>,
        want: Vec<String>,
    ) {
        for (key, state) in &states {
            if self.is_replica(key, self.id) {
                self.store_merge(ctx, key, state);
            }
        }
        let back: Vec<(String, State)> = want
            .iter()
            .filter_map(|k| self.store.get(k).map(|s| (k.clone(), s.clone())))
            .collect();
        if !back.is_empty() {
            ctx.send(
                from,
                Message::Sync {
                    states: back,
                    want: Vec::new(),
                },
            );
        }
    }

    fn load(&mut self, ctx: &mut Context<'_>) {
        let parse = |bytes: Option<std::borrow::Cow<'_, [u8]>>| -> Option<State> {
            serde_json::from_slice(&bytes?).ok()
        };
        for disk_key in ctx.disk().keys_with_prefix(DATA) {
            let key = disk_key[DATA.len()..].to_string();
            if let Some(state) = parse(ctx.disk().read(&disk_key)) {
                ctx.observe(Observation::Stored {
                    key: key.clone(),
                    state: state.clone(),
                });
                self.store.insert(key, state);
            }
        }
        for disk_key in ctx.disk().keys_with_prefix(HINT) {
            let rest = &disk_key[HINT.len()..];
            let Some((owner, key)) = rest.split_once('/') else {
                continue;
            };
            let (Ok(owner), Some(state)) = (owner.parse(), parse(ctx.disk().read(&disk_key)))
            else {
                continue;
            };
            self.hints.insert((NodeId(owner), key.to_string()), state);
        }
        for disk_key in ctx.disk().keys_with_prefix(OWN) {
            let text = ctx
                .disk()
                .read(&disk_key)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if let Some((p, n)) = text.split_once(' ')
                && let (Ok(p), Ok(n)) = (p.parse(), n.parse())
            {
                self.own.insert(disk_key[OWN.len()..].to_string(), (p, n));
            }
        }
    }
}

impl Process for Server {
    type Message = Message;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.load(ctx);
        ctx.set_timer(self.config.handoff_interval.to_std(), Timer::Handoff);
        if let Some(d) = self.config.anti_entropy_interval {
            ctx.set_timer(d.to_std(), Timer::AntiEntropy);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Message) {
        match message {
            Message::Write {
                op,
                key,
                state,
                hint,
            } => {
                self.accept_write(ctx, &key, &state, hint);
                ctx.send(from, Message::WriteAck { op });
            }
            Message::WriteAck { op } => self.on_ack(ctx, op, from),
            Message::Read { op, key, fallback } => {
                let state = self.local_read(&key, fallback);
                ctx.send(from, Message::ReadReply { op, state });
            }
            Message::ReadReply { op, state } => self.on_read_reply(ctx, op, from, state),
            Message::Repair { key, state } => {
                if self.is_replica(&key, self.id) {
                    self.store_merge(ctx, &key, &state);
                }
            }
            Message::Handoff { key, state } => {
                self.store_merge(ctx, &key, &state);
                ctx.send(
                    from,
                    Message::HandoffAck {
                        key,
                        digest: state.digest(),
                    },
                );
            }
            Message::HandoffAck { key, digest } => {
                let slot = (from, key);
                if self.hints.get(&slot).is_some_and(|s| s.digest() == digest) {
                    ctx.disk().remove(format!("{HINT}{}/{}", from.0, slot.1));
                    ctx.disk().sync();
                    self.hints.remove(&slot);
                }
            }
            Message::Digest { entries } => self.on_digest(ctx, from, entries),
            Message::Sync { states, want } => self.on_sync(ctx, from, states, want),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: Timer) {
        match timer {
            Timer::Coordinator { op } => self.on_coordinator_timeout(ctx, op),
            Timer::Fallback { op } => self.use_fallbacks(ctx, op),
            Timer::Handoff => {
                if self.handoff_enabled() {
                    self.hand_off(ctx);
                }
                ctx.set_timer(self.config.handoff_interval.to_std(), Timer::Handoff);
            }
            Timer::AntiEntropy => {
                self.anti_entropy(ctx);
                if let Some(d) = self.config.anti_entropy_interval {
                    ctx.set_timer(d.to_std(), Timer::AntiEntropy);
                }
            }
        }
    }

    fn on_other(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        message: crate::process::Message,
    ) -> Result<(), crate::process::Message> {
        let message = match kv::into_request(message) {
            Ok(request) => {
                match request.op {
                    kv::Op::Get { key } => {
                        self.coordinate(ctx, client, request.id, Origin::Kv, QOp::Get { key })
                    }
                    kv::Op::Put { key, value } => self.coordinate(
                        ctx,
                        client,
                        request.id,
                        Origin::Kv,
                        QOp::Put {
                            key,
                            value,
                            context: CausalContext::default(),
                        },
                    ),
                    _ => kv::ClientContext::reply(ctx, client, kv::Reply::unsupported(request.id)),
                }
                return Ok(());
            }
            Err(other) => other,
        };
        match message.downcast::<super::ClientMessage>()? {
            super::ClientMessage::Request(r) => {
                self.coordinate(ctx, client, r.id, Origin::Own, r.op);
                Ok(())
            }
            reply => Err(crate::process::Payload::new(reply)),
        }
    }
}
