//! The lock family's narrator: a run's story in lock terms, from the family's observations
//! (and, for the coordination service, the session replies its servers send).
//!
//! Story lines (topic `lock` unless noted): a client asks for the lock; a server grants it with
//! a fencing token and TTL (single instance; Redlock grants are counted in the client's
//! acquisition); a client acquires it (with its token, and its sequence node on the
//! coordination service), and *while another client still believes it holds* (two holders);
//! releases; stops believing at its validity time or when its lease/session ends (topic
//! `session`); a grant expires on a server; a server refuses a release; a restarted server
//! lost a grant it had given; a holder is paused, crashes or resumes while holding; the storage
//! refuses a stale token, or accepts one (a write whose token is lower than one granted since);
//! watchers are notified of a change (counted per change of the lock); the coordination
//! service's leader changes; a client opens or gives up a session, the leader expires one
//! (topic `session`).
//!
//! State fields: clients' `role` (`waiting`, `holder`, or empty) and `token`; their `session`
//! (the lease id) on the coordination service; a lock server's `grant` (`c2 · token 5`);
//! coordination servers' `role` (the Raft role they report).

use std::collections::BTreeMap;

use crate::families::narrate::{self, Cast};
use crate::family::{CastMember, Narration, Narrator};
use crate::sim::trace::TraceEvent;

/// Makes the lock narrator for a run that runs lock clients or a lock server (a coordination
/// service used as a service registry is told by the registry family's narrator).
pub fn narrator(cast: &[CastMember]) -> Option<Box<dyn Narrator>> {
    let cast = Cast::new(cast);
    let lock_names: Vec<&str> = super::FAMILY
        .workloads
        .iter()
        .map(|w| w.name)
        .chain([super::LOCK_SERVER.name, super::FENCED_STORAGE.name])
        .collect();
    cast.runs_any(&lock_names)
        .then(|| Box::new(LockNarrator::new(cast)) as Box<dyn Narrator>)
}

/// What the coordination service's servers tell, shared with the registry family's narrator:
/// their Raft role (leader changes), the sessions (leases) they grant to clients and expire.
#[derive(Debug, Default)]
pub(crate) struct CoordTeller {
    /// Each coordination server's last reported role.
    roles: BTreeMap<String, String>,
    /// Lease id -> the node it was granted to.
    pub(crate) owners: BTreeMap<u64, String>,
    /// Session replies in flight: msg id -> (client, lease, ttl ms).
    sessions_in_flight: BTreeMap<u64, (String, u64, u64)>,
    /// Each client's current session.
    pub(crate) session_of: BTreeMap<String, u64>,
}

impl CoordTeller {
    /// Tells the coordination facts of `e` (if any); returns true if it used the event.
    /// `who` names what a lease is for (`session`, `registration lease`).
    pub(crate) fn event(
        &mut self,
        cast: &Cast,
        e: &TraceEvent,
        who: &str,
        out: &mut Narration,
    ) -> bool {
        match e.kind {
            "observe" => {
                let Some(obs) = narrate::observation(e) else {
                    return false;
                };
                match narrate::tag(obs) {
                    "role" if cast.runs(e.node) == super::coord::server::PROTOCOL_NAME => {
                        let role = narrate::text(obs, "role").to_string();
                        let term = narrate::num(obs, "term");
                        if self.roles.get(e.node) != Some(&role) {
                            if role == "leader" {
                                out.say(
                                    e.t_ns,
                                    Some(e.node),
                                    "election",
                                    format!(
                                        "{} becomes the coordination service's leader (term {term})",
                                        e.node
                                    ),
                                );
                            }
                            out.set(e.t_ns, e.node, "role", role.clone());
                            self.roles.insert(e.node.to_string(), role);
                        }
                        true
                    }
                    "lease-expired" => {
                        let lease = narrate::num(obs, "lease");
                        let ttl_ms = narrate::num(obs, "ttl_ms");
                        let owner = self.owners.get(&lease).cloned();
                        let whose = owner
                            .as_deref()
                            .map_or(format!("{who} {lease}"), |o| format!("{o}'s {who} {lease}"));
                        out.say(
                            e.t_ns,
                            Some(e.node),
                            "session",
                            format!("{} expires {whose}: no keep-alive for {ttl_ms} ms", e.node),
                        );
                        true
                    }
                    _ => false,
                }
            }
            "send" => {
                let Some(msg) = e.get("msg") else {
                    return false;
                };
                match msg.get("type").and_then(|t| t.as_str()) {
                    Some("reply") => {
                        let outcome = &msg["answer"]["outcome"];
                        if outcome["outcome"] == "lease" {
                            let to = e.str("to").unwrap_or("?").to_string();
                            let lease = outcome["lease"].as_u64().unwrap_or(0);
                            let ttl = outcome["ttl_ms"].as_u64().unwrap_or(0);
                            self.owners.insert(lease, to.clone());
                            if let Some(id) = e.u64("msg_id") {
                                self.sessions_in_flight.insert(id, (to, lease, ttl));
                            }
                            return true;
                        }
                        false
                    }
                    Some("request") => {
                        let command = &msg["command"];
                        if command["cmd"] == "lease-revoke"
                            && !cast.runs(e.node).is_empty()
                            && cast.runs(e.node) != super::coord::server::PROTOCOL_NAME
                        {
                            let lease = command["lease"].as_u64().unwrap_or(0);
                            if self.session_of.get(e.node) == Some(&lease) {
                                self.session_of.remove(e.node);
                                out.say(
                                    e.t_ns,
                                    Some(e.node),
                                    "session",
                                    format!("{} gives up its {who} {lease}", e.node),
                                );
                                out.set(e.t_ns, e.node, "session", "");
                            }
                            return true;
                        }
                        false
                    }
                    _ => false,
                }
            }
            "deliver" | "drop" if !self.sessions_in_flight.is_empty() => {
                let Some((client, lease, ttl)) = e
                    .u64("msg_id")
                    .and_then(|id| self.sessions_in_flight.remove(&id))
                else {
                    return false;
                };
                if e.kind == "deliver" && self.session_of.get(&client) != Some(&lease) {
                    self.session_of.insert(client.clone(), lease);
                    out.say(
                        e.t_ns,
                        Some(&client),
                        "session",
                        format!("{client} opens {who} {lease} (TTL {ttl} ms)"),
                    );
                    out.set(e.t_ns, &client, "session", lease.to_string());
                }
                true
            }
            _ => false,
        }
    }
}

/// One client's belief.
#[derive(Debug, Default)]
struct ClientState {
    /// The token it believes it holds with, and since when.
    holding: Option<(u64, u64)>,
    /// Paused while holding.
    paused: bool,
}

/// See the module docs.
struct LockNarrator {
    cast: Cast,
    coord: CoordTeller,
    clients: BTreeMap<String, ClientState>,
    /// Each lock server's grant: (client, token).
    grants: BTreeMap<String, (String, u64)>,
    /// A lock server that crashed with a grant: its grant then.
    crashed_with: BTreeMap<String, (String, u64)>,
    /// The highest token granted or held so far.
    highest_token: u64,
    /// Lock servers (more than one: Redlock; grants are then told in the client's line).
    lock_servers: usize,
    /// Grants since each client's last acquisition (Redlock): the servers.
    grants_for: BTreeMap<String, Vec<String>>,
    /// Notifications since the lock last changed hands: (first time, key, clients).
    notified: Option<(u64, String, Vec<String>)>,
    /// Each client's latest created lock key (coordination recipes).
    created: BTreeMap<String, String>,
}

impl LockNarrator {
    fn new(cast: Cast) -> Self {
        LockNarrator {
            lock_servers: 0,
            cast,
            coord: CoordTeller::default(),
            clients: BTreeMap::new(),
            grants: BTreeMap::new(),
            crashed_with: BTreeMap::new(),
            highest_token: 0,
            grants_for: BTreeMap::new(),
            notified: None,
            created: BTreeMap::new(),
        }
    }

    fn is_lock_server(&self, node: &str) -> bool {
        self.cast.runs(node) == super::LOCK_SERVER.name
    }

    fn flush_notified(&mut self, out: &mut Narration) {
        if let Some((t, key, clients)) = self.notified.take() {
            out.say(
                t,
                None,
                "lock",
                format!(
                    "{} {} notified that {key} changed",
                    narrate::list(&clients),
                    if clients.len() == 1 { "is" } else { "are" }
                ),
            );
        }
    }

    fn observe(&mut self, e: &TraceEvent, out: &mut Narration) {
        let Some(obs) = narrate::observation(e) else {
            return;
        };
        let node = e.node;
        let t = e.t_ns;
        let client = || self.cast.name(obs.get("client"));
        match narrate::tag(obs) {
            "acquiring" => {
                out.say(t, Some(node), "lock", format!("{node} asks for the lock"));
                out.set(t, node, "role", "waiting");
                self.grants_for.remove(node);
            }
            "granted" if self.is_lock_server(node) => {
                let (c, token) = (client(), narrate::num(obs, "token"));
                let ttl = narrate::duration(narrate::num(obs, "ttl_ns"));
                self.highest_token = self.highest_token.max(token);
                if self.lock_servers <= 1 {
                    out.say(
                        t,
                        Some(node),
                        "lock",
                        format!(
                            "{node} grants the lock to {c} with fencing token {token} for {ttl}"
                        ),
                    );
                }
                self.grants_for
                    .entry(c.clone())
                    .or_default()
                    .push(node.to_string());
                out.set(t, node, "grant", format!("{c} · token {token}"));
                self.grants.insert(node.to_string(), (c, token));
            }
            "released" if self.is_lock_server(node) => {
                self.grants.remove(node);
                out.set(t, node, "grant", "");
            }
            "expired" => {
                let (c, token) = (client(), narrate::num(obs, "token"));
                let still = self
                    .clients
                    .get(&c)
                    .and_then(|s| s.holding)
                    .is_some_and(|(held, _)| held == token);
                out.say(
                    t,
                    Some(node),
                    "lock",
                    format!(
                        "{c}'s grant (token {token}) expires on {node}{}",
                        if still {
                            format!(", but {c} still believes it holds the lock")
                        } else {
                            String::new()
                        }
                    ),
                );
                self.grants.remove(node);
                out.set(t, node, "grant", "");
            }
            "refused-release" => {
                let (c, token) = (client(), narrate::num(obs, "token"));
                out.say(
                    t,
                    Some(node),
                    "lock",
                    format!(
                        "{node} refuses {c}'s release of token {token}: {c} no longer owns the lock"
                    ),
                );
            }
            "restored" if self.is_lock_server(node) => {
                let holder = obs.get("holder").and_then(|h| h.as_array());
                let kept = holder.map(|h| {
                    (
                        self.cast.name(h.first()),
                        h.get(1).and_then(|v| v.as_u64()).unwrap_or(0),
                    )
                });
                if let Some((c, token)) = self.crashed_with.remove(node)
                    && kept.as_ref() != Some(&(c.clone(), token))
                {
                    out.say(
                        t,
                        Some(node),
                        "lock",
                        format!(
                            "{node} restarts without {c}'s grant (token {token}): the grant was lost with the crash (last token on disk: {})",
                            narrate::num(obs, "last_token")
                        ),
                    );
                }
                match kept {
                    Some((c, token)) => {
                        out.set(t, node, "grant", format!("{c} · token {token}"));
                        self.grants.insert(node.to_string(), (c, token));
                    }
                    None => {
                        out.set(t, node, "grant", "");
                        self.grants.remove(node);
                    }
                }
            }
            "holding" => self.holding(t, node, narrate::num(obs, "token"), out),
            "stopped-holding" => {
                let token = narrate::num(obs, "token");
                let why = narrate::text(obs, "why");
                self.clients.entry(node.to_string()).or_default().holding = None;
                let (topic, text) = match why {
                    "released" => ("lock", format!("{node} releases the lock (token {token})")),
                    "validity-expired" => (
                        "lock",
                        format!("{node}'s validity time runs out: it stops using token {token}"),
                    ),
                    "lease-expired" => (
                        "session",
                        format!(
                            "{node}'s session ends by its clock: it no longer holds token {token}"
                        ),
                    ),
                    "lock-lost" => (
                        "lock",
                        format!(
                            "{node}'s guarded write fails: its lock key is gone, it lost the lock (token {token})"
                        ),
                    ),
                    other => (
                        "lock",
                        format!("{node} stops holding token {token} ({other})"),
                    ),
                };
                out.say(t, Some(node), topic, text);
                out.set(t, node, "role", "");
                out.set(t, node, "token", "");
            }
            "write-refused" => {
                let (c, token) = (client(), narrate::num(obs, "token"));
                out.say(
                    t,
                    Some(node),
                    "lock",
                    format!(
                        "{node} refuses {c}'s write with stale token {token} (it has accepted token {})",
                        narrate::num(obs, "highest")
                    ),
                );
            }
            "write-accepted" => {
                let (c, token) = (client(), narrate::num(obs, "token"));
                if token < self.highest_token {
                    out.say(
                        t,
                        Some(node),
                        "lock",
                        format!(
                            "{node} accepts {c}'s write with stale token {token}, although token {} was granted since",
                            self.highest_token
                        ),
                    );
                }
            }
            "notified" => {
                let key = narrate::text(obs, "key").to_string();
                match &mut self.notified {
                    Some((_, k, clients)) if *k == key => clients.push(node.to_string()),
                    _ => {
                        self.flush_notified(out);
                        self.notified = Some((t, key, vec![node.to_string()]));
                    }
                }
            }
            _ => {}
        }
    }

    fn holding(&mut self, t: u64, node: &str, token: u64, out: &mut Narration) {
        self.flush_notified(out);
        self.highest_token = self.highest_token.max(token);
        let others: Vec<String> = self
            .clients
            .iter()
            .filter(|(c, s)| c.as_str() != node && s.holding.is_some())
            .map(|(c, s)| format!("{c} (token {})", s.holding.map_or(0, |h| h.0)))
            .collect();
        let mut text = format!("{node} acquires the lock with token {token}");
        if let Some(key) = self.created.get(node) {
            text.push_str(&format!(" (its key {key} is the lowest)"));
        }
        if self.lock_servers > 1
            && let Some(servers) = self.grants_for.remove(node)
        {
            text.push_str(&format!(
                ", granted by {} of {} servers",
                servers.len(),
                self.lock_servers
            ));
        }
        if !others.is_empty() {
            text.push_str(&format!(
                " while {} still {} it holds the lock: two holders",
                narrate::list(&others),
                if others.len() == 1 {
                    "believes"
                } else {
                    "believe"
                }
            ));
        }
        out.say(t, Some(node), "lock", text);
        out.set(t, node, "role", "holder");
        out.set(t, node, "token", token.to_string());
        self.clients.entry(node.to_string()).or_default().holding = Some((token, t));
    }
}

impl Narrator for LockNarrator {
    fn event(&mut self, e: &TraceEvent, out: &mut Narration) {
        match e.kind {
            "observe" if !self.coord.event(&self.cast, e, "session", out) => self.observe(e, out),
            "observe" => {}
            "send" | "deliver" | "drop" => {
                if self.coord.event(&self.cast, e, "session", out) || e.kind != "send" {
                    return;
                }
                // The coordination recipes' lock keys, from the service's `created` replies.
                if let Some(msg) = e.get("msg")
                    && msg.get("type").and_then(|t| t.as_str()) == Some("reply")
                    && msg["answer"]["outcome"]["outcome"] == "created"
                    && let Some(to) = e.str("to")
                    && let Some(key) = msg["answer"]["outcome"]["key"].as_str()
                {
                    self.created.insert(to.to_string(), key.to_string());
                }
            }
            "start" if self.is_lock_server(e.node) && e.u64("incarnation") == Some(1) => {
                self.lock_servers += 1;
            }
            "crash" => {
                if let Some(grant) = self.grants.get(e.node) {
                    self.crashed_with.insert(e.node.to_string(), grant.clone());
                }
                if let Some((token, _)) = self.clients.get(e.node).and_then(|s| s.holding) {
                    out.say(
                        e.t_ns,
                        Some(e.node),
                        "lock",
                        format!("{} crashes while it holds the lock (token {token}); the lock stays taken until its lease ends", e.node),
                    );
                    self.clients.entry(e.node.to_string()).or_default().holding = None;
                    out.set(e.t_ns, e.node, "role", "");
                    out.set(e.t_ns, e.node, "token", "");
                }
                if self.coord.session_of.remove(e.node).is_some() {
                    out.set(e.t_ns, e.node, "session", "");
                }
            }
            "pause" => {
                if let Some(s) = self.clients.get_mut(e.node)
                    && let Some((token, _)) = s.holding
                {
                    s.paused = true;
                    out.say(
                        e.t_ns,
                        Some(e.node),
                        "lock",
                        format!(
                            "{} is paused while it holds the lock (token {token})",
                            e.node
                        ),
                    );
                }
            }
            "resume" => {
                if let Some(s) = self.clients.get_mut(e.node)
                    && s.paused
                {
                    s.paused = false;
                    if let Some((token, since)) = s.holding {
                        out.say(
                            e.t_ns,
                            Some(e.node),
                            "lock",
                            format!(
                                "{} resumes still believing it holds the lock with token {token} (acquired {} ago)",
                                e.node,
                                narrate::duration(e.t_ns - since)
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, _end_ns: u64, out: &mut Narration) {
        self.flush_notified(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::families::narrate::testing::{self, texts};

    fn cast() -> Vec<CastMember> {
        testing::cast(&[
            ("locks1", false, "lock-server"),
            ("disk", false, "fenced-storage"),
            ("c1", true, "lock"),
            ("c2", true, "lock"),
        ])
    }

    fn tell(lines: &[&str]) -> Narration {
        testing::tell(narrator(&cast()), lines, u64::MAX)
    }

    #[test]
    fn a_paused_holder_and_a_second_holder_are_told() {
        let out = tell(&[
            r#"{"t_ns":0,"node":"locks1","kind":"start","incarnation":1,"durable_bytes":0}"#,
            r#"{"t_ns":1,"node":"c1","kind":"observe","obs":{"fact":"acquiring"}}"#,
            r#"{"t_ns":2,"node":"locks1","kind":"observe","obs":{"fact":"granted","client":2,"token":1,"ttl_ns":10000000000,"expires_local_ns":5}}"#,
            r#"{"t_ns":3,"node":"c1","kind":"observe","obs":{"fact":"holding","token":1}}"#,
            r#"{"t_ns":4,"node":"c1","kind":"pause","origin":"fault[0]"}"#,
            r#"{"t_ns":5,"node":"locks1","kind":"observe","obs":{"fact":"expired","client":2,"token":1}}"#,
            r#"{"t_ns":6,"node":"c2","kind":"observe","obs":{"fact":"holding","token":2}}"#,
            r#"{"t_ns":2000000007,"node":"c1","kind":"resume","origin":"fault[0] (end)"}"#,
            r#"{"t_ns":2000000008,"node":"disk","kind":"observe","obs":{"fact":"write-accepted","client":2,"token":1}}"#,
            r#"{"t_ns":2000000009,"node":"disk","kind":"observe","obs":{"fact":"write-refused","client":2,"token":1,"highest":2}}"#,
        ]);
        assert_eq!(
            texts(&out),
            vec![
                "c1 asks for the lock",
                "locks1 grants the lock to c1 with fencing token 1 for 10 s",
                "c1 acquires the lock with token 1",
                "c1 is paused while it holds the lock (token 1)",
                "c1's grant (token 1) expires on locks1, but c1 still believes it holds the lock",
                "c2 acquires the lock with token 2 while c1 (token 1) still believes it holds the lock: two holders",
                "c1 resumes still believing it holds the lock with token 1 (acquired 2 s ago)",
                "disk accepts c1's write with stale token 1, although token 2 was granted since",
                "disk refuses c1's write with stale token 1 (it has accepted token 2)",
            ]
        );
        let last = |node: &str, field: &str| {
            out.states
                .iter()
                .rev()
                .find(|s| s.node == node && s.field == field)
                .map(|s| s.value.clone())
        };
        assert_eq!(last("c2", "role").as_deref(), Some("holder"));
        assert_eq!(last("c2", "token").as_deref(), Some("2"));
        assert_eq!(last("locks1", "grant").as_deref(), Some(""));
    }

    #[test]
    fn a_grant_lost_in_a_server_crash_is_told() {
        let out = tell(&[
            r#"{"t_ns":1,"node":"locks1","kind":"observe","obs":{"fact":"granted","client":3,"token":4,"ttl_ns":1000000,"expires_local_ns":5}}"#,
            r#"{"t_ns":2,"node":"locks1","kind":"crash","origin":"fault[0]","lost_writes":1}"#,
            r#"{"t_ns":3,"node":"locks1","kind":"observe","obs":{"fact":"restored","last_token":3,"holder":null}}"#,
        ]);
        assert_eq!(
            texts(&out)[1],
            "locks1 restarts without c2's grant (token 4): the grant was lost with the crash (last token on disk: 3)"
        );
    }

    #[test]
    fn sessions_and_watch_notifications_are_summarised() {
        let mut cast = cast();
        cast[0].runs = "coordination".into();
        let out = testing::tell(
            narrator(&cast),
            &[
                r#"{"t_ns":1,"node":"locks1","kind":"observe","obs":{"fact":"role","role":"leader","term":2}}"#,
                r#"{"t_ns":2,"node":"locks1","kind":"send","to":"c1","msg_id":9,"msg":{"type":"reply","id":1,"answer":{"status":"done","outcome":{"outcome":"lease","lease":3,"ttl_ms":2000}}}}"#,
                r#"{"t_ns":3,"node":"c1","kind":"deliver","from":"locks1","msg_id":9}"#,
                r#"{"t_ns":4,"node":"c1","kind":"observe","obs":{"fact":"notified","key":"/lock/a"}}"#,
                r#"{"t_ns":5,"node":"c2","kind":"observe","obs":{"fact":"notified","key":"/lock/a"}}"#,
                r#"{"t_ns":6,"node":"locks1","kind":"observe","obs":{"fact":"lease-expired","lease":3,"ttl_ms":2000}}"#,
                r#"{"t_ns":7,"node":"c1","kind":"send","to":"locks1","msg_id":10,"msg":{"type":"request","id":2,"command":{"cmd":"lease-revoke","lease":3}}}"#,
            ],
            10,
        );
        assert_eq!(
            texts(&out),
            vec![
                "locks1 becomes the coordination service's leader (term 2)",
                "c1 opens session 3 (TTL 2000 ms)",
                "locks1 expires c1's session 3: no keep-alive for 2000 ms",
                "c1 gives up its session 3",
                "c1 and c2 are notified that /lock/a changed",
            ]
        );
        assert!(
            out.states
                .iter()
                .any(|s| s.node == "locks1" && s.field == "role" && s.value == "leader")
        );
    }

    #[test]
    fn a_registry_without_lock_clients_gets_no_lock_narrator() {
        let cast = testing::cast(&[
            ("r1", false, "coordination"),
            ("web1", false, "service-instance"),
        ]);
        assert!(narrator(&cast).is_none());
    }
}
