//! The coordination service's replicated state machine ([`CoordMachine`]): etcd's key space
//! with revisions and leases, which is also ZooKeeper's (ephemeral and sequential nodes, sessions),
//! replicated by the Raft family's node unchanged. See the vocabulary in
//! [`crate::families::lock::coord`] for what each [`CoordCommand`] does.
//!
//! # State
//!
//! - `revision`: raised by one for every change (a grant, a revoke of an existing lease, a
//!   create, a delete of an existing key, a guarded write that passed); etcd's store revision,
//!   ZooKeeper's zxid. A failed or no-op command leaves it alone.
//! - `leases`: lease (session) id → TTL and the keys attached to it. A lease's id is the revision
//!   of its grant.
//! - `keys`: key → value, create revision, lease.
//! - `events`: the last [`MAX_EVENTS`] events, in order: every key created or deleted (with the
//!   revision of the change) and every guarded write's result (accepted or refused, with the
//!   writer and its token). Each event has a sequence number (`seq`, counting every event ever
//!   logged), so a server can tell which events it has not looked at yet even when a refused
//!   write changes no revision. The server's watch hub and its storage facts read them
//!   ([`super::server`]). Dropping the oldest event raises `compacted_revision`: events at or
//!   below it may be gone (a watch from before it is told `compacted`).
//! - `highest_token`: the highest fencing token of an accepted guarded write (what a fenced
//!   storage would call its highest token; reported with a refusal).
//!
//! # Invariants
//!
//! - The revision never decreases; every create, delete or accepted write has a revision above
//!   every earlier one.
//! - A key's create revision never changes while the key exists (a key deleted and created again
//!   gets a new, higher one).
//! - A key attached to a lease exists only while the lease does: revoking a lease deletes every
//!   key attached to it in the same revision, and a create naming a lease that does not exist
//!   fails.
//! - The machine has no clock: expiry is decided by the Raft leader's lessor and arrives as a
//!   [`CoordCommand::LeaseRevoke`] like any other command.
//!
//! Determinism: `BTreeMap`s, `BTreeSet`s and a `VecDeque` only; `apply` is a pure function of
//! the state and the command. The whole state, events included, is the snapshot.
//!
//! Limits (a command beyond one fails with [`CoordOutcome::Error`], nothing changed):
//! [`MAX_LEASES`] leases, [`MAX_KEYS`] keys, TTLs from 1 ms to [`MAX_TTL_MS`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::{CoordAnswer, CoordCommand, CoordMessage, CoordOutcome, KeyInfo, LeaseId};
use crate::families::replicated::{Answer, Served, StateMachine};
use crate::process::{Context, Message, NodeId, Payload};

/// Events kept for watches and facts (older ones are compacted away).
pub const MAX_EVENTS: usize = 1024;
/// Most leases that may exist at once; a grant beyond fails.
pub const MAX_LEASES: usize = 10_000;
/// Most keys that may exist at once; a create (or a guarded write of a new key) beyond fails.
pub const MAX_KEYS: usize = 100_000;
/// Longest lease TTL, in milliseconds (1 hour).
pub const MAX_TTL_MS: u64 = 3_600_000;

/// One lease (session).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Its TTL in milliseconds.
    pub ttl_ms: u64,
    /// The keys attached to it (deleted when it is revoked).
    pub keys: BTreeSet<String>,
}

/// One key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// Its value.
    pub value: String,
    /// The revision that created it.
    pub create_revision: u64,
    /// The lease it is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// What an [`Event`] records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// `key` was created.
    Created {
        /// The key.
        key: String,
    },
    /// `key` was deleted (by a delete or with its lease).
    Deleted {
        /// The key.
        key: String,
    },
    /// A guarded write ([`CoordCommand::Txn`]) by `writer` with `token` ran: `accepted` if its
    /// guard held; `highest` is the highest token accepted before it.
    Write {
        /// The writing client.
        writer: NodeId,
        /// Its fencing token.
        token: u64,
        /// The guard held and the value was written.
        accepted: bool,
        /// The highest token accepted before this write.
        highest: u64,
    },
}

/// One logged event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its sequence number (0, 1, 2, ... over the machine's whole life).
    pub seq: u64,
    /// The machine's revision after it (the revision of the change, for a create or delete).
    pub revision: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The coordination machine. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordMachine {
    revision: u64,
    /// Serialized as `[[id, lease], ...]`: the snapshot flattens the machine next to its
    /// sessions, and serde cannot read integer map keys back through a flattened struct.
    #[serde(with = "pairs")]
    leases: BTreeMap<LeaseId, Lease>,
    keys: BTreeMap<String, Key>,
    events: VecDeque<Event>,
    next_seq: u64,
    compacted_revision: u64,
    highest_token: u64,
}

/// A map as a sequence of (key, value) pairs (see `CoordMachine::leases`).
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

impl CoordMachine {
    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The lease `id`, if it exists.
    pub fn lease(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Every lease, by id.
    pub fn leases(&self) -> &BTreeMap<LeaseId, Lease> {
        &self.leases
    }

    /// The key `key`, if it exists.
    pub fn key(&self, key: &str) -> Option<&Key> {
        self.keys.get(key)
    }

    /// The retained events with a sequence number at least `seq`, oldest first.
    pub fn events_from(&self, seq: u64) -> impl Iterator<Item = &Event> {
        let first = self.events.front().map_or(self.next_seq, |e| e.seq);
        let skip = seq.saturating_sub(first) as usize;
        self.events.iter().skip(skip)
    }

    /// The sequence number the next event will get (every event so far has a lower one).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The sequence number of the oldest retained event (`next_seq` when none is).
    pub fn first_seq(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |e| e.seq)
    }

    /// Events at or below this revision may have been compacted away.
    pub fn compacted_revision(&self) -> u64 {
        self.compacted_revision
    }

    /// Logs an event at the current revision, dropping the oldest beyond [`MAX_EVENTS`].
    fn log(&mut self, kind: EventKind) {
        self.events.push_back(Event {
            seq: self.next_seq,
            revision: self.revision,
            kind,
        });
        self.next_seq += 1;
        while self.events.len() > MAX_EVENTS {
            let dropped = self.events.pop_front().expect("non-empty");
            self.compacted_revision = self.compacted_revision.max(dropped.revision);
        }
    }

    /// Removes `key` (logging its deletion at the current revision) and, when `detach`, takes
    /// it off its lease's key set (not when the lease is being revoked as a whole).
    fn remove_key(&mut self, key: &str, detach: bool) {
        if let Some(gone) = self.keys.remove(key) {
            if detach && let Some(lease) = gone.lease.and_then(|l| self.leases.get_mut(&l)) {
                lease.keys.remove(key);
            }
            self.log(EventKind::Deleted { key: key.into() });
        }
    }

    fn error(error: impl Into<String>) -> CoordOutcome {
        CoordOutcome::Error {
            error: error.into(),
        }
    }

    /// Every key starting with `prefix`, in key order, at the current revision (what a
    /// [`CoordCommand::Range`] answers), with their values if `with_values`:
    /// [`CoordOutcome::Keys`].
    pub fn range(&self, prefix: &str, with_values: bool) -> CoordOutcome {
        let keys = self
            .keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| KeyInfo {
                key: k.clone(),
                create_revision: v.create_revision,
                lease: v.lease,
                value: with_values.then(|| v.value.clone()),
            })
            .collect();
        CoordOutcome::Keys {
            keys,
            revision: self.revision,
        }
    }

    fn create(
        &mut self,
        key: &str,
        value: &str,
        lease: Option<LeaseId>,
        sequential: bool,
    ) -> CoordOutcome {
        if let Some(l) = lease
            && !self.leases.contains_key(&l)
        {
            return Self::error(format!("lease {l} not found"));
        }
        let full = if sequential {
            format!("{key}{:010}", self.revision + 1)
        } else {
            key.to_string()
        };
        if let Some(existing) = self.keys.get(&full) {
            return CoordOutcome::Exists {
                create_revision: existing.create_revision,
            };
        }
        if self.keys.len() >= MAX_KEYS {
            return Self::error(format!("too many keys: at most {MAX_KEYS}"));
        }
        self.revision += 1;
        self.keys.insert(
            full.clone(),
            Key {
                value: value.into(),
                create_revision: self.revision,
                lease,
            },
        );
        if let Some(l) = lease {
            self.leases
                .get_mut(&l)
                .expect("checked above")
                .keys
                .insert(full.clone());
        }
        self.log(EventKind::Created { key: full.clone() });
        CoordOutcome::Created {
            key: full,
            revision: self.revision,
        }
    }

    fn txn(
        &mut self,
        guard_key: &str,
        guard_revision: u64,
        put: (&str, &str),
        writer: NodeId,
        token: u64,
    ) -> CoordOutcome {
        let (key, value) = put;
        let guard_holds = guard_key.is_empty()
            || self
                .keys
                .get(guard_key)
                .is_some_and(|k| k.create_revision == guard_revision);
        let room = self.keys.contains_key(key) || self.keys.len() < MAX_KEYS;
        let highest = self.highest_token;
        if !(guard_holds && room) {
            self.log(EventKind::Write {
                writer,
                token,
                accepted: false,
                highest,
            });
            return if guard_holds {
                Self::error(format!("too many keys: at most {MAX_KEYS}"))
            } else {
                CoordOutcome::TxnDone {
                    succeeded: false,
                    revision: self.revision,
                }
            };
        }
        self.revision += 1;
        self.highest_token = highest.max(token);
        match self.keys.get_mut(key) {
            Some(existing) => existing.value = value.into(),
            None => {
                self.keys.insert(
                    key.into(),
                    Key {
                        value: value.into(),
                        create_revision: self.revision,
                        lease: None,
                    },
                );
                self.log(EventKind::Created { key: key.into() });
            }
        }
        self.log(EventKind::Write {
            writer,
            token,
            accepted: true,
            highest,
        });
        CoordOutcome::TxnDone {
            succeeded: true,
            revision: self.revision,
        }
    }
}

impl StateMachine for CoordMachine {
    type Command = CoordCommand;
    type Outcome = CoordOutcome;

    fn apply(&mut self, command: &CoordCommand) -> CoordOutcome {
        match command {
            CoordCommand::LeaseGrant { ttl_ms } => {
                if !(1..=MAX_TTL_MS).contains(ttl_ms) {
                    return Self::error(format!(
                        "ttl_ms {ttl_ms} out of range: expected 1 to {MAX_TTL_MS}"
                    ));
                }
                if self.leases.len() >= MAX_LEASES {
                    return Self::error(format!("too many leases: at most {MAX_LEASES}"));
                }
                self.revision += 1;
                self.leases.insert(
                    self.revision,
                    Lease {
                        ttl_ms: *ttl_ms,
                        keys: BTreeSet::new(),
                    },
                );
                CoordOutcome::Lease {
                    lease: self.revision,
                    ttl_ms: *ttl_ms,
                }
            }
            CoordCommand::LeaseRevoke { lease } => {
                let Some(gone) = self.leases.remove(lease) else {
                    return CoordOutcome::Revoked { existed: false };
                };
                self.revision += 1;
                for key in &gone.keys {
                    self.remove_key(key, false);
                }
                CoordOutcome::Revoked { existed: true }
            }
            CoordCommand::Create {
                key,
                value,
                lease,
                sequential,
            } => self.create(key, value, *lease, *sequential),
            CoordCommand::Delete { key } => {
                if !self.keys.contains_key(key) {
                    return CoordOutcome::Deleted { existed: false };
                }
                self.revision += 1;
                self.remove_key(key, true);
                CoordOutcome::Deleted { existed: true }
            }
            CoordCommand::Range {
                prefix,
                with_values,
                ..
            } => self.range(prefix, *with_values),
            CoordCommand::Txn {
                guard_key,
                guard_revision,
                key,
                value,
                writer,
                token,
            } => self.txn(guard_key, *guard_revision, (key, value), *writer, *token),
        }
    }

    fn is_read(command: &CoordCommand) -> bool {
        matches!(command, CoordCommand::Range { .. })
    }

    fn read(&self, command: &CoordCommand) -> CoordOutcome {
        let CoordCommand::Range {
            prefix,
            with_values,
            ..
        } = command
        else {
            unreachable!("only a range is read-only")
        };
        self.range(prefix, *with_values)
    }
}

/// The coordination clients' vocabulary: a [`CoordMessage::Request`] in,
/// a [`CoordMessage::Reply`] out. Every command is supported.
impl Served for CoordMachine {
    /// The request's id and command.
    type Request = (u64, CoordCommand);

    fn parse_request(message: Message) -> Result<(u64, CoordCommand), Message> {
        match message.downcast::<CoordMessage>()? {
            CoordMessage::Request { id, command } => Ok((id, command)),
            other => Err(Payload::new(other)),
        }
    }

    fn split_request((id, command): (u64, CoordCommand)) -> (u64, Option<CoordCommand>) {
        (id, Some(command))
    }

    fn send_reply(ctx: &mut Context<'_>, client: NodeId, id: u64, answer: Answer<CoordOutcome>) {
        let answer = match answer {
            Answer::Done(outcome) => CoordAnswer::Done { outcome },
            Answer::Redirect(leader) => CoordAnswer::Redirect { leader },
            Answer::Fail(error) => CoordAnswer::Fail { error },
            Answer::Unknown(error) => CoordAnswer::Unknown { error },
            Answer::Unsupported => CoordAnswer::Fail {
                error: "unsupported".into(),
            },
        };
        ctx.send(client, CoordMessage::Reply { id, answer });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::replicated::{Applied, Command, Sessions};

    fn grant(m: &mut CoordMachine, ttl_ms: u64) -> LeaseId {
        match m.apply(&CoordCommand::LeaseGrant { ttl_ms }) {
            CoordOutcome::Lease { lease, .. } => lease,
            other => panic!("grant answered {other:?}"),
        }
    }

    fn create(key: &str, lease: Option<LeaseId>, sequential: bool) -> CoordCommand {
        CoordCommand::Create {
            key: key.into(),
            value: "v".into(),
            lease,
            sequential,
        }
    }

    fn txn(guard_key: &str, guard_revision: u64, writer: u32, token: u64) -> CoordCommand {
        CoordCommand::Txn {
            guard_key: guard_key.into(),
            guard_revision,
            key: "resource".into(),
            value: format!("from {writer}"),
            writer: NodeId(writer),
            token,
        }
    }

    fn range(m: &mut CoordMachine, prefix: &str) -> Vec<(String, u64)> {
        let read = m.read(&CoordCommand::range(prefix));
        assert_eq!(
            read,
            m.apply(&CoordCommand::range(prefix)),
            "a read answers what applying would"
        );
        match read {
            CoordOutcome::Keys { keys, revision } => {
                assert_eq!(revision, m.revision());
                keys.into_iter()
                    .map(|k| (k.key, k.create_revision))
                    .collect()
            }
            other => panic!("range answered {other:?}"),
        }
    }

    fn kinds(m: &CoordMachine) -> Vec<(u64, EventKind)> {
        m.events_from(0)
            .map(|e| (e.revision, e.kind.clone()))
            .collect()
    }

    #[test]
    fn a_grant_makes_a_lease_named_by_its_revision_and_bad_ttls_fail() {
        let mut m = CoordMachine::default();
        assert_eq!(grant(&mut m, 1000), 1);
        assert_eq!(grant(&mut m, 500), 2);
        assert_eq!(m.lease(2).unwrap().ttl_ms, 500);
        for ttl_ms in [0, MAX_TTL_MS + 1] {
            assert!(matches!(
                m.apply(&CoordCommand::LeaseGrant { ttl_ms }),
                CoordOutcome::Error { .. }
            ));
        }
        assert_eq!(m.revision(), 2, "a failed grant changes nothing");
    }

    #[test]
    fn create_answers_created_then_exists_with_the_first_create_revision() {
        let mut m = CoordMachine::default();
        assert_eq!(
            m.apply(&create("/lock/a", None, false)),
            CoordOutcome::Created {
                key: "/lock/a".into(),
                revision: 1
            }
        );
        assert_eq!(
            m.apply(&create("/lock/a", None, false)),
            CoordOutcome::Exists { create_revision: 1 }
        );
        assert_eq!(m.revision(), 1, "an existing key changes nothing");
        assert!(
            matches!(
                m.apply(&create("/lock/b", Some(99), false)),
                CoordOutcome::Error { .. }
            ),
            "a create naming a missing lease fails"
        );
        assert_eq!(m.revision(), 1);
    }

    #[test]
    fn sequential_keys_get_growing_ten_digit_numbers() {
        let mut m = CoordMachine::default();
        let lease = grant(&mut m, 1000);
        let a = m.apply(&create("/lock/n-", Some(lease), true));
        let b = m.apply(&create("/lock/n-", Some(lease), true));
        assert_eq!(
            a,
            CoordOutcome::Created {
                key: "/lock/n-0000000002".into(),
                revision: 2
            }
        );
        assert_eq!(
            b,
            CoordOutcome::Created {
                key: "/lock/n-0000000003".into(),
                revision: 3
            }
        );
        assert_eq!(
            range(&mut m, "/lock/"),
            vec![
                ("/lock/n-0000000002".to_string(), 2),
                ("/lock/n-0000000003".to_string(), 3)
            ]
        );
        assert_eq!(range(&mut m, "/other"), vec![]);
    }

    #[test]
    fn delete_removes_a_key_and_detaches_it_from_its_lease() {
        let mut m = CoordMachine::default();
        let lease = grant(&mut m, 1000);
        m.apply(&create("/lock/a", Some(lease), false));
        assert_eq!(
            m.apply(&CoordCommand::Delete {
                key: "/lock/a".into()
            }),
            CoordOutcome::Deleted { existed: true }
        );
        assert_eq!(m.revision(), 3);
        assert!(m.lease(lease).unwrap().keys.is_empty());
        assert_eq!(
            m.apply(&CoordCommand::Delete {
                key: "/lock/a".into()
            }),
            CoordOutcome::Deleted { existed: false }
        );
        assert_eq!(m.revision(), 3, "deleting an absent key changes nothing");
        assert_eq!(
            kinds(&m),
            vec![
                (
                    2,
                    EventKind::Created {
                        key: "/lock/a".into()
                    }
                ),
                (
                    3,
                    EventKind::Deleted {
                        key: "/lock/a".into()
                    }
                )
            ]
        );
    }

    #[test]
    fn revoking_a_lease_deletes_its_keys_in_one_revision() {
        let mut m = CoordMachine::default();
        let lease = grant(&mut m, 1000);
        let other = grant(&mut m, 1000);
        m.apply(&create("/lock/a", Some(lease), false));
        m.apply(&create("/lock/b", Some(lease), true));
        m.apply(&create("/lock/c", Some(other), false));
        m.apply(&create("/plain", None, false));
        assert_eq!(
            m.apply(&CoordCommand::LeaseRevoke { lease }),
            CoordOutcome::Revoked { existed: true }
        );
        assert_eq!(m.revision(), 7);
        assert!(m.lease(lease).is_none());
        assert_eq!(
            range(&mut m, "/"),
            vec![("/lock/c".to_string(), 5), ("/plain".to_string(), 6)]
        );
        let deletes: Vec<_> = kinds(&m)
            .into_iter()
            .filter(|(_, k)| matches!(k, EventKind::Deleted { .. }))
            .collect();
        assert_eq!(deletes.len(), 2);
        assert!(
            deletes.iter().all(|(r, _)| *r == 7),
            "one revision: {deletes:?}"
        );
        assert_eq!(
            m.apply(&CoordCommand::LeaseRevoke { lease }),
            CoordOutcome::Revoked { existed: false }
        );
        assert_eq!(m.revision(), 7);
    }

    #[test]
    fn a_guarded_write_runs_only_while_the_guard_key_has_its_create_revision() {
        let mut m = CoordMachine::default();
        let lease = grant(&mut m, 1000);
        m.apply(&create("/lock/a", Some(lease), false)); // revision 2
        assert_eq!(
            m.apply(&txn("/lock/a", 2, 7, 2)),
            CoordOutcome::TxnDone {
                succeeded: true,
                revision: 3
            }
        );
        assert_eq!(m.key("resource").unwrap().value, "from 7");
        assert_eq!(
            m.apply(&txn("/lock/a", 1, 7, 1)),
            CoordOutcome::TxnDone {
                succeeded: false,
                revision: 3
            },
            "wrong revision"
        );
        m.apply(&CoordCommand::LeaseRevoke { lease }); // revision 4
        m.apply(&create("/lock/a", None, false)); // revision 5: same key, new revision
        assert_eq!(
            m.apply(&txn("/lock/a", 2, 7, 2)),
            CoordOutcome::TxnDone {
                succeeded: false,
                revision: 5
            },
            "the key was created again: the old holder's guard fails"
        );
        assert_eq!(m.key("resource").unwrap().value, "from 7");
        let writes: Vec<_> = kinds(&m)
            .into_iter()
            .filter_map(|(_, k)| match k {
                EventKind::Write {
                    accepted, highest, ..
                } => Some((accepted, highest)),
                _ => None,
            })
            .collect();
        assert_eq!(writes, vec![(true, 0), (false, 2), (false, 2)]);
    }

    #[test]
    fn an_unguarded_write_is_always_accepted_even_with_an_old_token() {
        let mut m = CoordMachine::default();
        m.apply(&txn("", 0, 7, 9));
        assert_eq!(
            m.apply(&txn("", 0, 8, 3)),
            CoordOutcome::TxnDone {
                succeeded: true,
                revision: 2
            }
        );
        assert_eq!(m.key("resource").unwrap().value, "from 8");
        assert_eq!(m.key("resource").unwrap().create_revision, 1);
        assert!(matches!(
            kinds(&m).last(),
            Some((
                2,
                EventKind::Write {
                    accepted: true,
                    token: 3,
                    highest: 9,
                    ..
                }
            ))
        ));
    }

    #[test]
    fn the_event_log_is_bounded_and_marks_what_it_compacted() {
        let mut m = CoordMachine::default();
        for i in 0..MAX_EVENTS + 10 {
            m.apply(&create(&format!("/k/{i}"), None, false));
        }
        assert_eq!(m.events_from(0).count(), MAX_EVENTS);
        assert_eq!(m.compacted_revision(), 10);
        assert_eq!(m.first_seq(), 10);
        assert_eq!(m.next_seq(), MAX_EVENTS as u64 + 10);
        assert_eq!(m.events_from(m.next_seq() - 2).count(), 2);
        assert_eq!(
            m.events_from(m.next_seq() - 2).next().unwrap().seq,
            m.next_seq() - 2
        );
    }

    #[test]
    fn snapshots_round_trip_the_whole_state_through_the_sessions() {
        let mut s: Sessions<CoordMachine> = Sessions::new(16);
        let cmd = |request, op| Command {
            client: NodeId(9),
            request,
            op,
        };
        let Applied::Executed(CoordOutcome::Lease { lease, .. }) =
            s.apply(&cmd(1, CoordCommand::LeaseGrant { ttl_ms: 800 }))
        else {
            panic!("granted")
        };
        s.apply(&cmd(2, create("/lock/n-", Some(lease), true)));
        s.apply(&cmd(3, txn("/lock/n-0000000002", 2, 9, 2)));
        s.apply(&cmd(4, txn("/lock/gone", 1, 9, 1)));
        let text = s.to_snapshot();
        let back = Sessions::<CoordMachine>::from_snapshot(&text, 16).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.machine().revision(), 3);
        assert_eq!(back.machine().next_seq(), 4);
        assert!(matches!(
            back.clone().apply(&cmd(2, create("/x", None, false))),
            Applied::Duplicate(CoordOutcome::Created { .. })
        ));
    }

    #[test]
    fn requests_parse_from_coordination_messages_and_replies_carry_the_answer() {
        let request = CoordMessage::Request {
            id: 4,
            command: CoordCommand::range("/"),
        };
        assert_eq!(
            CoordMachine::parse_request(Payload::new(request)).unwrap(),
            (4, CoordCommand::range("/"))
        );
        let other = CoordMessage::KeepAlive { lease: 1 };
        assert!(CoordMachine::parse_request(Payload::new(other)).is_err());
        let mut tc = crate::process::TestContext::new(NodeId(0), 1);
        CoordMachine::send_reply(
            &mut tc.ctx(),
            NodeId(9),
            4,
            Answer::Redirect(Some(NodeId(2))),
        );
        let effects = tc.take_effects();
        let [crate::process::Effect::Send { to, message }] = &effects[..] else {
            panic!("one send: {effects:?}")
        };
        assert_eq!(*to, NodeId(9));
        assert_eq!(
            message.downcast_ref::<CoordMessage>(),
            Some(&CoordMessage::Reply {
                id: 4,
                answer: CoordAnswer::Redirect {
                    leader: Some(NodeId(2))
                }
            })
        );
    }
}
