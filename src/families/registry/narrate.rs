//! The registry family's narrator: a run's story in service-registry terms.
//!
//! Story lines (topic `registry`; the coordination service's leader changes and lease expiries
//! as the lock family tells them, topics `election` and `session`): an instance's agent
//! learns its registration is confirmed, lost (it registers again) or removed after it leaves;
//! the CP registry adds or drops instances (one line per instant, with the revisions; a drop
//! of an instance that did not leave is an expiry); a `eureka` server evicts an instance (its
//! lease age and TTL), enters or leaves self-preservation, warms up from a peer, or starts or
//! stops listing instances (replication, eviction elsewhere); a discovering client sees a new
//! set of instances.
//!
//! State fields: an instance's `role` (`registered` while some registry server lists it,
//! `expired` when none does and it did not leave, `deregistered`) and, for the AP registry,
//! `listed by` (the servers that list it); a discovering client's `sees` (the instances in its
//! view); a `eureka` server's `role` (`self-preservation` or empty); coordination servers'
//! `role` (their Raft role).

use std::collections::{BTreeMap, BTreeSet};

use crate::families::lock::narrate::CoordTeller;
use crate::families::narrate::{self, Cast};
use crate::family::{CastMember, Narration, Narrator};
use crate::sim::trace::TraceEvent;

/// Makes the registry narrator for a run with service instances (or registering backends),
/// discovering clients or `eureka` servers.
pub fn narrator(cast: &[CastMember]) -> Option<Box<dyn Narrator>> {
    let cast = Cast::new(cast);
    let mut names: Vec<&str> = super::REGISTERING_PROTOCOLS.to_vec();
    names.extend([super::DISCOVERY_NAME, super::eureka::PROTOCOL_NAME]);
    cast.runs_any(&names).then(|| {
        let lock_clients = cast.runs_any(
            &crate::families::lock::FAMILY
                .workloads
                .iter()
                .map(|w| w.name)
                .collect::<Vec<_>>(),
        );
        Box::new(RegistryNarrator {
            cast,
            // With lock clients the lock narrator tells the coordination service.
            coord: (!lock_clients).then(CoordTeller::default),
            ..RegistryNarrator::default()
        }) as Box<dyn Narrator>
    })
}

/// Most instance names a client-view line lists.
const MAX_NAMES: usize = 12;

/// Changes of one registry view at one instant, told in one line when the instant ends.
#[derive(Debug, Default)]
struct Pending {
    t_ns: u64,
    added: Vec<String>,
    removed: Vec<String>,
    revisions: Option<(u64, u64)>,
}

/// See the module docs.
#[derive(Debug, Default)]
struct RegistryNarrator {
    cast: Cast,
    coord: Option<CoordTeller>,
    /// CP: the registry's instances per service, as of the highest revision applied anywhere.
    cp_view: BTreeMap<String, BTreeSet<String>>,
    cp_revision: u64,
    /// AP: each server's instances per service.
    ap_views: BTreeMap<(String, String), BTreeSet<String>>,
    /// Per view (`""` for the CP registry, else the server), its changes at the current instant.
    pending: BTreeMap<String, Pending>,
    /// Instances that announced they are leaving.
    leaving: BTreeSet<String>,
    /// Instances a `eureka` server just evicted: (server, instance).
    evicted: BTreeSet<(String, String)>,
    /// Each instance's last `role` and `listed by`.
    roles: BTreeMap<String, String>,
    listed: BTreeMap<String, String>,
    /// Each agent's last registration state.
    registration: BTreeMap<String, String>,
}

impl RegistryNarrator {
    fn flush(&mut self, out: &mut Narration) {
        for (view, p) in std::mem::take(&mut self.pending) {
            let (node, subject) = if view.is_empty() {
                (None, "the registry".to_string())
            } else {
                (Some(view.as_str()), view.clone())
            };
            let revisions = match p.revisions {
                Some((a, b)) if a == b => format!(" (revision {a})"),
                Some((a, b)) => format!(" (revisions {a}-{b})"),
                None => String::new(),
            };
            if !p.added.is_empty() {
                out.say(
                    p.t_ns,
                    node,
                    "registry",
                    format!("{subject} lists {}{revisions}", narrate::list(&p.added)),
                );
            }
            let (gone, expired): (Vec<String>, Vec<String>) = p
                .removed
                .into_iter()
                .partition(|i| self.leaving.contains(i));
            if !gone.is_empty() {
                out.say(
                    p.t_ns,
                    node,
                    "registry",
                    format!(
                        "{subject} removes {} (deregistered){revisions}",
                        narrate::list(&gone)
                    ),
                );
            }
            if !expired.is_empty() {
                let why = if view.is_empty() {
                    "its lease expired"
                } else {
                    "evicted or replicated from a peer"
                };
                let verb = if view.is_empty() {
                    "drops"
                } else {
                    "no longer lists"
                };
                out.say(
                    p.t_ns,
                    node,
                    "registry",
                    format!(
                        "{subject} {verb} {} ({why}){revisions}",
                        narrate::list(&expired)
                    ),
                );
            }
        }
    }

    fn pending(&mut self, t_ns: u64, view: &str, out: &mut Narration) -> &mut Pending {
        if self.pending.values().any(|p| p.t_ns != t_ns) {
            self.flush(out);
        }
        let p = self.pending.entry(view.to_string()).or_default();
        p.t_ns = t_ns;
        p
    }

    /// Sets each instance's `role` and `listed by` from the registry views.
    fn update_instances(&mut self, t_ns: u64, instances: &BTreeSet<String>, out: &mut Narration) {
        for i in instances {
            let listed: Vec<&str> = if self.ap_views.is_empty() {
                Vec::new()
            } else {
                self.ap_views
                    .iter()
                    .filter(|(_, v)| v.contains(i))
                    .map(|((server, _), _)| server.as_str())
                    .collect()
            };
            let in_cp = self.cp_view.values().any(|v| v.contains(i));
            let role = if in_cp || !listed.is_empty() {
                "registered"
            } else if self.leaving.contains(i) {
                "deregistered"
            } else {
                "expired"
            };
            if self.roles.get(i).map(String::as_str) != Some(role) {
                out.set(t_ns, i, "role", role);
                self.roles.insert(i.clone(), role.to_string());
            }
            if !self.ap_views.is_empty() {
                let listed = listed.join(", ");
                if self.listed.get(i) != Some(&listed) {
                    out.set(t_ns, i, "listed by", listed.clone());
                    self.listed.insert(i.clone(), listed);
                }
            }
        }
    }

    fn observe(&mut self, e: &TraceEvent, out: &mut Narration) {
        let Some(obs) = narrate::observation(e) else {
            return;
        };
        let (t, node) = (e.t_ns, e.node);
        let instances = |key: &str| -> BTreeSet<String> {
            obs.get(key)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        match narrate::tag(obs) {
            "applied" => {
                let revision = narrate::num(obs, "revision");
                if revision <= self.cp_revision {
                    return; // another replica, or a replay, of a change already told
                }
                self.cp_revision = revision;
                let service = narrate::text(obs, "service").to_string();
                let now = instances("instances");
                let before = self
                    .cp_view
                    .insert(service, now.clone())
                    .unwrap_or_default();
                let p = self.pending(t, "", out);
                p.added.extend(now.difference(&before).cloned());
                p.removed.extend(before.difference(&now).cloned());
                p.revisions = Some((p.revisions.map_or(revision, |r| r.0), revision));
                let touched: BTreeSet<String> = before.union(&now).cloned().collect();
                self.update_instances(t, &touched, out);
            }
            "server-view" if self.cast.runs(node) == super::eureka::PROTOCOL_NAME => {
                let service = narrate::text(obs, "service").to_string();
                let now = instances("instances");
                let before = self
                    .ap_views
                    .insert((node.to_string(), service), now.clone())
                    .unwrap_or_default();
                let removed: Vec<String> = before
                    .difference(&now)
                    .filter(|i| !self.evicted.remove(&(node.to_string(), (*i).clone())))
                    .cloned()
                    .collect();
                let p = self.pending(t, node, out);
                p.added.extend(now.difference(&before).cloned());
                p.removed.extend(removed);
                let touched: BTreeSet<String> = before.union(&now).cloned().collect();
                self.update_instances(t, &touched, out);
            }
            "evicted" => {
                let instance = narrate::text(obs, "instance").to_string();
                out.say(
                    t,
                    Some(node),
                    "registry",
                    format!(
                        "{node} evicts {instance}: no renewal for {} ms (lease {} ms){}",
                        narrate::num(obs, "lease_age_ms"),
                        narrate::num(obs, "ttl_ms"),
                        if obs.get("self_preservation").and_then(|v| v.as_bool()) == Some(true) {
                            " although it is in self-preservation"
                        } else {
                            ""
                        }
                    ),
                );
                self.evicted.insert((node.to_string(), instance));
            }
            "self-preservation" => {
                let active = obs.get("active").and_then(|v| v.as_bool()) == Some(true);
                let counts = format!(
                    "{} renewals in the window, {} expected",
                    narrate::num(obs, "renewals_in_window"),
                    obs.get("expected_renewals_in_window")
                        .and_then(|v| v.as_f64())
                        .unwrap_or(0.0)
                );
                let text = if active {
                    format!("{node} enters self-preservation ({counts}): it stops evicting")
                } else {
                    format!("{node} leaves self-preservation ({counts}): it evicts again")
                };
                out.say(t, Some(node), "registry", text);
                out.set(
                    t,
                    node,
                    "role",
                    if active { "self-preservation" } else { "" },
                );
            }
            "warmed-up" => {
                let (leases, peer) = (narrate::num(obs, "leases"), self.cast.name(obs.get("peer")));
                let text = if leases == 0 {
                    format!("{node} warms up: {peer} has no lease to copy yet")
                } else {
                    format!(
                        "{node} warms up: it copies {} from {peer}",
                        narrate::count(leases, "lease")
                    )
                };
                out.say(t, Some(node), "registry", text);
            }
            "registration" => {
                let state = narrate::text(obs, "state").to_string();
                if self.registration.get(node) == Some(&state) {
                    return;
                }
                let service = narrate::text(obs, "service");
                let text = match state.as_str() {
                    "registered" => format!("{node} is registered as an instance of {service}"),
                    "lost" => format!(
                        "{node} learns the registry no longer has its registration and registers again"
                    ),
                    "deregistered" => format!("{node}'s deregistration is acknowledged"),
                    other => format!("{node}'s registration is {other}"),
                };
                out.say(t, Some(node), "registry", text);
                self.registration.insert(node.to_string(), state);
            }
            "leaving" => {
                self.leaving.insert(node.to_string());
                out.say(
                    t,
                    Some(node),
                    "registry",
                    format!("{node} leaves gracefully: it deregisters"),
                );
            }
            "client-view" => {
                let now: Vec<String> = instances("instances").into_iter().collect();
                let shown = if now.len() > MAX_NAMES {
                    format!(
                        "{}, ... ({} more)",
                        now[..MAX_NAMES].join(", "),
                        now.len() - MAX_NAMES
                    )
                } else {
                    now.join(", ")
                };
                let text = if now.is_empty() {
                    format!(
                        "{node} now sees no instance of {}",
                        narrate::text(obs, "service")
                    )
                } else {
                    format!(
                        "{node} now sees {} of {}: {}",
                        narrate::count(now.len() as u64, "instance"),
                        narrate::text(obs, "service"),
                        shown
                    )
                };
                out.say(t, Some(node), "registry", text);
                out.set(t, node, "sees", now.join(" "));
            }
            _ => {}
        }
    }
}

impl Narrator for RegistryNarrator {
    fn event(&mut self, e: &TraceEvent, out: &mut Narration) {
        if !self.pending.is_empty() && self.pending.values().any(|p| p.t_ns != e.t_ns) {
            self.flush(out);
        }
        if let Some(coord) = &mut self.coord
            && matches!(e.kind, "observe" | "send" | "deliver" | "drop")
            && coord.event(&self.cast, e, "registration lease", out)
        {
            return;
        }
        if e.kind == "observe" {
            self.observe(e, out);
        }
    }

    fn finish(&mut self, _end_ns: u64, out: &mut Narration) {
        self.flush(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::families::narrate::testing::{self, texts};

    fn member(name: &str, client: bool, runs: &str) -> CastMember {
        testing::cast(&[(name, client, runs)]).remove(0)
    }

    fn tell(cast: &[CastMember], lines: &[&str]) -> Narration {
        testing::tell(narrator(cast), lines, u64::MAX)
    }

    #[test]
    fn cp_changes_at_one_instant_are_one_line_and_an_expiry_is_named() {
        let cast = [
            member("r1", false, "coordination"),
            member("r2", false, "coordination"),
            member("web1", false, "service-instance"),
            member("web2", false, "service-instance"),
        ];
        let out = tell(
            &cast,
            &[
                r#"{"t_ns":5,"node":"r1","kind":"observe","obs":{"type":"applied","service":"web","revision":2,"instances":["web1"]}}"#,
                r#"{"t_ns":5,"node":"r1","kind":"observe","obs":{"type":"applied","service":"web","revision":3,"instances":["web1","web2"]}}"#,
                r#"{"t_ns":6,"node":"r2","kind":"observe","obs":{"type":"applied","service":"web","revision":2,"instances":["web1"]}}"#,
                r#"{"t_ns":6,"node":"web1","kind":"observe","obs":{"type":"registration","service":"web","instance":"web1","state":"registered"}}"#,
                r#"{"t_ns":9,"node":"r1","kind":"observe","obs":{"type":"applied","service":"web","revision":4,"instances":["web1"]}}"#,
            ],
        );
        assert_eq!(
            texts(&out),
            vec![
                "the registry lists web1 and web2 (revisions 2-3)",
                "web1 is registered as an instance of web",
                "the registry drops web2 (its lease expired) (revision 4)",
            ]
        );
        let roles: Vec<(&str, &str)> = out
            .states
            .iter()
            .filter(|s| s.field == "role")
            .map(|s| (s.node.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("web1", "registered"),
                ("web2", "registered"),
                ("web2", "expired")
            ]
        );
    }

    #[test]
    fn ap_evictions_self_preservation_and_client_views_are_told() {
        let cast = [
            member("e1", false, "eureka"),
            member("e2", false, "eureka"),
            member("web1", false, "service-instance"),
            member("c1", true, "discovery"),
        ];
        let out = tell(
            &cast,
            &[
                r#"{"t_ns":1,"node":"e1","kind":"observe","obs":{"type":"server-view","service":"web","instances":["web1"]}}"#,
                r#"{"t_ns":2,"node":"e2","kind":"observe","obs":{"type":"server-view","service":"web","instances":["web1"]}}"#,
                r#"{"t_ns":3,"node":"c1","kind":"observe","obs":{"type":"client-view","service":"web","instances":["web1"]}}"#,
                r#"{"t_ns":4,"node":"e2","kind":"observe","obs":{"fact":"self-preservation","active":true,"renewals_in_window":2,"expected_renewals_in_window":4.0}}"#,
                r#"{"t_ns":5,"node":"e1","kind":"observe","obs":{"fact":"evicted","service":"web","instance":"web1","lease_age_ms":6000,"ttl_ms":5000,"renewals_in_window":0,"expected_renewals_in_window":1.0,"self_preservation":false}}"#,
                r#"{"t_ns":5,"node":"e1","kind":"observe","obs":{"type":"server-view","service":"web","instances":[]}}"#,
            ],
        );
        assert_eq!(
            texts(&out),
            vec![
                "e1 lists web1",
                "e2 lists web1",
                "c1 now sees 1 instance of web: web1",
                "e2 enters self-preservation (2 renewals in the window, 4 expected): it stops evicting",
                "e1 evicts web1: no renewal for 6000 ms (lease 5000 ms)",
            ]
        );
        let listed: Vec<&str> = out
            .states
            .iter()
            .filter(|s| s.field == "listed by")
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(listed, vec!["e1", "e1, e2", "e2"]);
    }
}
