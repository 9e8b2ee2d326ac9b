//! Semantic validation: everything serde's types cannot say. Each rule reports the key path of
//! the offending value (located in the file by [`ScenarioError::at_path`]) and what was expected.
//!
//! Validation collects every problem it finds rather than stopping at the first, so one
//! `faultline validate` shows all of them. A rule whose premise is already broken is skipped
//! rather than reported twice (a fault that lacks `target` is not also told its empty target is
//! unknown), and the rules that need the cluster's nodes run only once the cluster's size is
//! within [`limits`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::error::PathSeg;
use super::limits;
use super::topology::{RESERVED_NAMES, Role, Topology};
use super::{
    Duration, FaultKind, FaultSpec, LatencyDistribution, LatencySpec, Nemesis, NodeList,
    PartitionShape, Scenario, ScenarioError, Verdict,
};

/// The collector of problems found in one file.
struct V<'a> {
    path: &'a Path,
    text: &'a str,
    errors: RefCell<Vec<ScenarioError>>,
}

impl V<'_> {
    fn report(&self, path: &[PathSeg<'_>], message: impl Into<String>) {
        let err = ScenarioError::at_path(self.path, self.text, path, message);
        self.errors.borrow_mut().push(err);
    }

    /// Records `message` at `path` unless `ok`; returns `ok`.
    fn check(&self, ok: bool, path: &[PathSeg<'_>], message: impl FnOnce() -> String) -> bool {
        if !ok {
            self.report(path, message());
        }
        ok
    }

    /// Records "expected at most `max` `what` (the limit), found `found`" at `path` unless
    /// `found <= max`; returns whether it is.
    fn at_most<T: PartialOrd + std::fmt::Display>(
        &self,
        found: T,
        max: T,
        what: &str,
        path: &[PathSeg<'_>],
    ) -> bool {
        self.check(found <= max, path, || {
            format!("expected at most {max} {what} (the limit), found {found}")
        })
    }

    fn positive(&self, d: Duration, path: &[PathSeg<'_>]) -> bool {
        self.check(d.as_nanos() > 0, path, || {
            "expected a positive duration".into()
        })
    }

    fn probability(&self, p: f64, path: &[PathSeg<'_>]) -> bool {
        self.check((0.0..=1.0).contains(&p), path, || {
            format!("expected a probability between 0 and 1, found {p}")
        })
    }

    fn drift(&self, d: f64, path: &[PathSeg<'_>]) -> bool {
        self.check(d.is_finite() && d > -1.0 && d <= limits::MAX_DRIFT, path, || {
            format!(
                "expected a drift above -1 (a clock must move forward) and at most {}, found {d}",
                limits::MAX_DRIFT
            )
        })
    }

    fn latency_at_most(&self, d: Duration, path: &[PathSeg<'_>]) -> bool {
        self.check(d <= limits::MAX_LATENCY, path, || {
            format!(
                "expected a latency of at most {} (the limit), found {d}",
                limits::MAX_LATENCY
            )
        })
    }

    fn latency(&self, spec: &LatencySpec, path: &[PathSeg<'_>]) {
        let key = |k| child(path, k);
        let d = match spec {
            LatencySpec::Constant(c) => {
                self.latency_at_most(*c, path);
                return;
            }
            LatencySpec::Distribution(d) => d,
        };
        match d {
            LatencyDistribution::Constant { value } => {
                self.latency_at_most(*value, &key("value"));
            }
            LatencyDistribution::Uniform { min, max } => {
                let _ = self.check(min <= max, &key("max"), || {
                    format!("empty latency range: max ({max}) is below min ({min})")
                }) && self.latency_at_most(*max, &key("max"));
            }
            LatencyDistribution::Exponential { mean, min, max } => {
                self.check(mean > min, &key("mean"), || {
                    format!("expected mean ({mean}) above min ({min})")
                });
                self.latency_at_most(*mean, &key("mean"));
                if let Some(max) = max {
                    self.check(max >= mean, &key("max"), || {
                        format!("empty latency range: max ({max}) is below the mean ({mean})")
                    });
                }
            }
            LatencyDistribution::Normal { mean, std_dev, max } => {
                self.latency_at_most(*mean, &key("mean"));
                self.latency_at_most(*std_dev, &key("std_dev"));
                if let Some(max) = max {
                    self.check(max >= mean, &key("max"), || {
                        format!("empty latency range: max ({max}) is below the mean ({mean})")
                    });
                }
            }
        }
    }

    /// The link conditions a `[[network.link]]` override and a `degrade` fault share, under the
    /// table at `base`: a latency within the limit, probabilities between 0 and 1.
    fn conditions(
        &self,
        base: &[PathSeg<'_>],
        latency: Option<&LatencySpec>,
        loss_probability: Option<f64>,
        duplicate_probability: Option<f64>,
    ) {
        let key = |k| child(base, k);
        if let Some(l) = latency {
            self.latency(l, &key("latency"));
        }
        for (k, x) in [
            ("loss_probability", loss_probability),
            ("duplicate_probability", duplicate_probability),
        ] {
            if let Some(x) = x {
                self.probability(x, &key(k));
            }
        }
    }

    /// A reference to nodes: a node, a group, `all`, `*`, `servers`, `clients`, and (if
    /// `dynamic`) `random` or `leader`.
    fn node_ref(&self, topo: &Topology, r: &str, dynamic: bool, path: &[PathSeg<'_>]) -> bool {
        if dynamic && (r == "random" || r == "leader") {
            return true;
        }
        match topo.resolve_static(r) {
            Some(ids) if !ids.is_empty() => true,
            Some(_) => self.check(false, path, || {
                format!("\"{r}\" names no node (an empty group)")
            }),
            None => {
                let extra = if dynamic {
                    ", \"random\", \"leader\""
                } else {
                    ""
                };
                self.check(false, path, || {
                    format!(
                        "unknown node or group \"{r}\"; expected one of {}, a group, \"all\", \"servers\", \"clients\"{extra}",
                        topo.names.join(", ")
                    )
                })
            }
        }
    }
}

/// The path of key `k` in the table at `base`.
fn child<'a>(base: &[PathSeg<'a>], k: &'static str) -> Vec<PathSeg<'a>> {
    let mut p = base.to_vec();
    p.push(PathSeg::Key(k));
    p
}

/// True if every message on a link with this latency arrives at the instant it was sent.
/// Whether a scenario `name` is safe as a folder name under `--out`: 1 to
/// [`limits::MAX_NAME_CHARS`] characters from `[A-Za-z0-9._-]`, starting with a letter or digit.
/// So no path separator, no `.` or `..`, no leading dot or dash, no NUL, no space.
pub fn valid_scenario_name(name: &str) -> bool {
    name.chars().count() <= limits::MAX_NAME_CHARS
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The most faults the nemesis can plan for `duration`, whatever the seed: each fault lasts
/// `fault_duration` and the gap before it is at least `interval / 2` (see `sim::faults`), from
/// `start` until `duration - final_heal`.
pub fn nemesis_worst_case_faults(n: &Nemesis, duration: Duration) -> u64 {
    let window_end = duration.as_nanos().saturating_sub(n.final_heal.as_nanos());
    let window = window_end.saturating_sub(n.start.as_nanos());
    let per_fault = n.interval.as_nanos() / 2 + n.fault_duration.as_nanos();
    window.checked_div(per_fault).unwrap_or(u64::MAX)
}

/// Validates a deserialized scenario against its source text and returns every problem found
/// (empty: valid), in the order of their place in the file. `name_from_file` says the `name` was
/// not in the text but taken from the file name.
pub fn validate(
    s: &mut Scenario,
    path: &Path,
    text: &str,
    name_from_file: bool,
) -> Vec<ScenarioError> {
    let v = V {
        path,
        text,
        errors: RefCell::new(Vec::new()),
    };
    validate_into(&v, s, name_from_file);
    let mut errors = v.errors.into_inner();
    errors.sort_by_key(|e| (e.line, e.column));
    errors
}

fn validate_into(v: &V<'_>, s: &mut Scenario, name_from_file: bool) {
    validate_name(v, s, name_from_file);
    let duration = s.duration;
    v.positive(duration, &["duration".into()]);
    v.at_most(
        duration,
        limits::MAX_DURATION,
        "of simulated time",
        &["duration".into()],
    );

    // Cluster and client groups.
    let roles_ok = validate_roles(v, s);
    let groups_ok = validate_client_groups(v, s);
    if let Some(n) = &s.nemesis {
        validate_nemesis(v, n, duration);
    }

    // Node references are resolved on a topology, built only for a cluster within limits.
    let topo = (roles_ok && groups_ok).then(|| Topology::new(s));
    validate_network(v, s, topo.as_ref());
    let Some(topo) = topo else {
        // Still check every role's and group's options, on the cluster cut to the limits.
        if s.cluster.roles.len() <= limits::MAX_ROLES
            && s.clients.len() <= limits::MAX_CLIENT_GROUPS
        {
            let topo = Topology::new(&within_limits(s));
            validate_options(v, s, &topo);
        }
        return;
    };
    validate_groups(v, s, &topo);
    for (node, clock) in &s.clock {
        let p = ["clock".into(), PathSeg::Key(node)];
        v.check(topo.node(node).is_some(), &p, || {
            format!(
                "unknown node \"{node}\"; expected one of {}",
                topo.names.join(", ")
            )
        });
        v.drift(
            clock.drift,
            &["clock".into(), PathSeg::Key(node), "drift".into()],
        );
    }
    if v.at_most(
        s.faults.len(),
        limits::MAX_FAULTS,
        "faults",
        &["fault".into()],
    ) {
        for (i, f) in s.faults.iter().enumerate() {
            validate_fault(v, s, &topo, i, f);
        }
    }
    validate_options(v, s, &topo);
    validate_checks(v, s, &topo);
}

/// `s` with every role's and client group's size cut to the limits (for checking options when
/// the cluster itself is too big).
fn within_limits(s: &Scenario) -> Scenario {
    let mut s = s.clone();
    for role in &mut s.cluster.roles {
        role.nodes = match &role.nodes {
            NodeList::Count(n) => NodeList::Count((*n).clamp(1, limits::MAX_SERVERS)),
            NodeList::Names(names) => NodeList::Names(
                names
                    .iter()
                    .take(limits::MAX_SERVERS as usize)
                    .cloned()
                    .collect(),
            ),
        };
    }
    for group in &mut s.clients {
        group.count = group.count.min(limits::MAX_CLIENTS);
    }
    s
}

/// Reports an option's problem at its place in the file (at the key itself for an unknown key).
fn report_option(v: &V<'_>, segments: &[String], e: super::OptionError) {
    if e.at_key {
        let err = ScenarioError::at_key(v.path, v.text, &path_segs(segments), e.message);
        v.errors.borrow_mut().push(err);
    } else {
        report_at(v, segments, e.message);
    }
}

/// Reports `message` at a path given as owned segments (list indexes as decimal strings).
fn report_at(v: &V<'_>, segments: &[String], message: String) {
    v.report(&path_segs(segments), message);
}

/// Owned segments as a key path: decimal strings are list indexes (`cluster.role[0]`).
fn path_segs(segments: &[String]) -> Vec<PathSeg<'_>> {
    segments
        .iter()
        .map(|seg| match seg.parse::<usize>() {
            Ok(i) => PathSeg::Index(i),
            Err(_) => PathSeg::Key(seg),
        })
        .collect()
}

/// Where a key of role `i` (`of_role`) or of its options is written in the file.
fn role_path(s: &Scenario, i: usize, path: &[String], of_role: bool) -> Vec<String> {
    let role = &s.cluster.roles[i];
    let mut out: Vec<String> = match (role.shorthand, of_role) {
        (true, true) => vec!["cluster".into()],
        (true, false) => vec![role.protocol.clone()],
        (false, true) => vec!["cluster".into(), "role".into(), i.to_string()],
        (false, false) => vec![
            "cluster".into(),
            "role".into(),
            i.to_string(),
            "options".into(),
        ],
    };
    out.extend(path.iter().cloned());
    out
}

/// Where a key of client group `i` (`of_role`) or of its options is written in the file.
fn group_path(s: &Scenario, i: usize, path: &[String], of_role: bool) -> Vec<String> {
    let group = &s.clients[i];
    let mut out: Vec<String> = match (group.shorthand, of_role) {
        (true, _) => vec!["workload".into()],
        (false, true) => vec!["clients".into(), i.to_string()],
        (false, false) => vec!["clients".into(), i.to_string(), "options".into()],
    };
    if group.shorthand && of_role && path.first().map(String::as_str) == Some("count") {
        out.push("clients".into());
        return out;
    }
    out.extend(path.iter().cloned());
    out
}

/// A role or client group name: a valid node name that is no reserved word.
fn check_part_name(v: &V<'_>, name: &str, seen: &mut BTreeSet<String>, at: &[String]) -> bool {
    if !valid_node_name(name) || RESERVED_NAMES.contains(&name) {
        report_at(
            v,
            at,
            format!(
                "invalid name \"{}\"; expected 1 to {} letters, digits, '-' or '_', not a reserved name ({})",
                name.escape_debug(),
                limits::MAX_NODE_NAME_CHARS,
                RESERVED_NAMES.join(", ")
            ),
        );
        return false;
    }
    if !seen.insert(name.to_string()) {
        report_at(
            v,
            at,
            format!("duplicate role or client group name \"{name}\""),
        );
        return false;
    }
    true
}

/// The roles: names, protocols, nodes and the limits. Returns false if a topology cannot be
/// built (too many nodes, bad names).
fn validate_roles(v: &V<'_>, s: &Scenario) -> bool {
    let roles = &s.cluster.roles;
    if !v.at_most(
        roles.len(),
        limits::MAX_ROLES,
        "roles",
        &["cluster".into(), "role".into()],
    ) {
        return false;
    }
    let mut ok = true;
    let mut names = BTreeSet::new();
    let mut nodes = BTreeSet::new();
    let mut total: u64 = 0;
    for (i, role) in roles.iter().enumerate() {
        let key = |k: &str| role_path(s, i, &[k.to_string()], true);
        if !role.shorthand {
            ok &= check_part_name(v, &role.name, &mut names, &key("name"));
        } else {
            names.insert(role.name.clone());
        }
        if s.families.serves(&role.protocol).is_none() {
            let mut known: Vec<&str> = s.families.protocols();
            known.sort_unstable();
            report_at(
                v,
                &key("protocol"),
                format!(
                    "unknown protocol \"{}\"; expected one of: {}",
                    role.protocol,
                    known.join(", ")
                ),
            );
        }
        let max = limits::MAX_SERVERS;
        match &role.nodes {
            NodeList::Count(n) => {
                if !(1..=max).contains(n) {
                    report_at(
                        v,
                        &key("nodes"),
                        format!("expected between 1 and {max} nodes (the limit), found {n}"),
                    );
                    ok = false;
                }
                total += u64::from(*n);
            }
            NodeList::Names(list) => {
                if list.is_empty() || list.len() > max as usize {
                    report_at(
                        v,
                        &key("nodes"),
                        format!(
                            "expected between 1 and {max} node names (the limit), found {}",
                            list.len()
                        ),
                    );
                    ok = false;
                    continue;
                }
                total += list.len() as u64;
                for (k, name) in list.iter().enumerate() {
                    let at = role_path(s, i, &["nodes".to_string(), k.to_string()], true);
                    if !valid_node_name(name) {
                        report_at(
                            v,
                            &at,
                            format!(
                                "invalid node name \"{}\"; expected 1 to {} letters, digits, '-' or '_'",
                                name.escape_debug(),
                                limits::MAX_NODE_NAME_CHARS
                            ),
                        );
                        ok = false;
                    } else if RESERVED_NAMES.contains(&name.as_str()) {
                        report_at(v, &at, format!("\"{name}\" is a reserved name"));
                        ok = false;
                    } else if !nodes.insert(name.clone()) {
                        report_at(v, &at, format!("duplicate node name \"{name}\""));
                        ok = false;
                    }
                }
            }
        }
    }
    if ok && total > u64::from(limits::MAX_SERVERS) {
        v.report(
            &["cluster".into()],
            format!(
                "expected at most {} server nodes over all roles (the limit), found {total}",
                limits::MAX_SERVERS
            ),
        );
        ok = false;
    }
    if ok {
        // Counted names (`<role>N`, `<group>N`) must not collide with listed ones. (Client
        // counts are not checked yet: the topology is built on the cluster cut to the limits.)
        let topo = Topology::new(&within_limits(s));
        let mut seen = BTreeSet::new();
        for (id, name) in topo.names.iter().enumerate() {
            if !seen.insert(name) {
                let i = topo.part[id];
                let at = if topo.roles[id] == Role::Client {
                    group_path(s, i, &["name".to_string()], true)
                } else {
                    role_path(s, i, &["nodes".to_string()], true)
                };
                report_at(v, &at, format!("duplicate node name \"{name}\""));
                ok = false;
            }
        }
        // A role's or client group's name names all its nodes: it must not be another's node.
        let part_name = |id: crate::process::NodeId| match topo.roles[id.index()] {
            Role::Server => &roles[topo.part[id.index()]].name,
            Role::Client => &s.clients[topo.part[id.index()]].name,
        };
        let parts = roles
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.shorthand)
            .map(|(i, r)| {
                (
                    &r.name,
                    Role::Server,
                    role_path(s, i, &["name".into()], true),
                )
            })
            .chain(
                s.clients
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| !g.shorthand)
                    .map(|(i, g)| {
                        (
                            &g.name,
                            Role::Client,
                            group_path(s, i, &["name".into()], true),
                        )
                    }),
            );
        for (name, kind, at) in parts {
            if let Some(node) = topo.node(name)
                && (part_name(node) != name || topo.roles[node.index()] != kind)
            {
                report_at(
                    v,
                    &at,
                    format!(
                        "\"{name}\" is also the name of a node of \"{}\"; expected a role or client group name that no node has",
                        part_name(node)
                    ),
                );
                ok = false;
            }
        }
    }
    ok
}

/// The client groups: names, workloads, counts, `talks_to`; fills in a missing `talks_to` with
/// every role whose protocol serves the workload. Returns false if a topology cannot be built.
fn validate_client_groups(v: &V<'_>, s: &mut Scenario) -> bool {
    if !v.at_most(
        s.clients.len(),
        limits::MAX_CLIENT_GROUPS,
        "client groups",
        &["clients".into()],
    ) {
        return false;
    }
    let mut ok = true;
    let mut names: BTreeSet<String> = s.cluster.roles.iter().map(|r| r.name.clone()).collect();
    let mut total: u64 = 0;
    for i in 0..s.clients.len() {
        let key = |s: &Scenario, k: &str| group_path(s, i, &[k.to_string()], true);
        let group = &s.clients[i];
        if !group.shorthand {
            ok &= check_part_name(v, &group.name, &mut names, &key(s, "name"));
        }
        total += u64::from(group.count);
        if !s.families.has_workload(&group.workload) {
            let mut known: Vec<&str> = s.families.workloads();
            known.sort_unstable();
            report_at(
                v,
                &key(s, "workload"),
                format!(
                    "unknown workload \"{}\"; expected one of: {}",
                    group.workload,
                    known.join(", ")
                ),
            );
            continue;
        }
        let workload = group.workload.clone();
        let serves = |role: &super::RoleSpec| {
            s.families
                .serves(&role.protocol)
                .is_some_and(|w| w.contains(&workload.as_str()))
        };
        if group.talks_to.is_empty() {
            let talks_to: Vec<String> = s
                .cluster
                .roles
                .iter()
                .filter(|r| serves(r))
                .map(|r| r.name.clone())
                .collect();
            if talks_to.is_empty() {
                report_at(
                    v,
                    &key(s, "workload"),
                    format!(
                        "no role runs a protocol that serves the {} workload; expected a role whose protocol serves it",
                        workload
                    ),
                );
            }
            s.clients[i].talks_to = talks_to;
            continue;
        }
        let mut any_serves = false;
        for (k, r) in group.talks_to.iter().enumerate() {
            match s.cluster.roles.iter().find(|x| &x.name == r) {
                Some(role) => any_serves |= serves(role),
                None => {
                    let known: Vec<&str> =
                        s.cluster.roles.iter().map(|r| r.name.as_str()).collect();
                    report_at(
                        v,
                        &group_path(s, i, &["talks_to".to_string(), k.to_string()], true),
                        format!(
                            "unknown role \"{r}\"; expected one of: {}",
                            known.join(", ")
                        ),
                    );
                    any_serves = true; // reported already
                }
            }
        }
        if !any_serves {
            report_at(
                v,
                &key(s, "talks_to"),
                format!(
                    "none of these roles runs a protocol that serves the {} workload",
                    workload
                ),
            );
        }
    }
    if total > u64::from(limits::MAX_CLIENTS) {
        let at = if s.clients.iter().any(|g| g.shorthand) {
            vec!["workload".to_string(), "clients".to_string()]
        } else {
            vec!["clients".to_string()]
        };
        report_at(
            v,
            &at,
            format!(
                "expected at most {} clients (the limit), found {total}",
                limits::MAX_CLIENTS
            ),
        );
        ok = false;
    }
    ok
}

/// Every role's and client group's options, checked by the family that owns them; each is
/// replaced by its resolved form (defaults filled in).
fn validate_options(v: &V<'_>, s: &mut Scenario, topo: &Topology) {
    let mut resolved_roles = Vec::new();
    for i in 0..s.cluster.roles.len() {
        match s.families.configure_role(s, topo, i) {
            None => {} // an unknown protocol is reported already
            Some(Ok(options)) => resolved_roles.push((i, options)),
            Some(Err(errors)) => {
                for e in errors {
                    report_option(v, &role_path(s, i, &e.path, e.of_role), e);
                }
            }
        }
    }
    let mut resolved_groups = Vec::new();
    for (i, group) in s.clients.iter().enumerate() {
        if !group
            .talks_to
            .iter()
            .all(|r| s.cluster.roles.iter().any(|x| &x.name == r))
        {
            continue; // an unknown role in `talks_to` is reported already
        }
        match s.families.configure_group(s, topo, i) {
            None => {} // an unknown workload is reported already
            Some(Ok(options)) => resolved_groups.push((i, options)),
            Some(Err(errors)) => {
                for e in errors {
                    report_option(v, &group_path(s, i, &e.path, e.of_role), e);
                }
            }
        }
    }
    for (i, options) in resolved_roles {
        s.cluster.roles[i].options = options;
    }
    for (i, options) in resolved_groups {
        s.clients[i].options = options;
    }
}

fn validate_name(v: &V<'_>, s: &Scenario, name_from_file: bool) {
    let name = &s.name;
    let rule = format!(
        "1 to {} letters, digits, '.', '-' or '_', starting with a letter or digit (it names the report folder)",
        limits::MAX_NAME_CHARS
    );
    if name_from_file {
        v.check(valid_scenario_name(name), &["name".into()], || {
            format!(
                "the scenario name comes from the file name, \"{}\", which is not a valid name: expected {rule}; set `name` or rename the file",
                name.escape_debug()
            )
        });
    } else {
        v.check(valid_scenario_name(name), &["name".into()], || {
            format!("expected {rule}, found \"{}\"", name.escape_debug())
        });
    }
}

fn validate_groups(v: &V<'_>, s: &Scenario, topo: &Topology) {
    let groups = &s.cluster.groups;
    if !v.at_most(
        groups.len(),
        limits::MAX_GROUPS,
        "groups",
        &["cluster".into(), "groups".into()],
    ) {
        return;
    }
    for (group, members) in groups {
        let p = ["cluster".into(), "groups".into(), PathSeg::Key(group)];
        let _ = v.check(
            valid_node_name(group) && !RESERVED_NAMES.contains(&group.as_str()),
            &p,
            || {
                format!(
                    "invalid group name \"{}\"; expected 1 to {} letters, digits, '-' or '_', not a reserved name",
                    group.escape_debug(),
                    limits::MAX_NODE_NAME_CHARS
                )
            },
        ) && v.check(topo.node(group).is_none(), &p, || {
            format!("group \"{group}\" has the name of a node")
        }) && v.check(
            !s.cluster.roles.iter().any(|r| &r.name == group)
                && !s.clients.iter().any(|c| &c.name == group),
            &p,
            || format!("group \"{group}\" has the name of a role or client group"),
        ) && v.check(!members.is_empty(), &p, || {
            format!("group \"{group}\" is empty")
        });
        for (i, m) in members.iter().enumerate() {
            let mp = [
                "cluster".into(),
                "groups".into(),
                PathSeg::Key(group),
                i.into(),
            ];
            v.check(topo.node(m).is_some(), &mp, || {
                format!(
                    "unknown node \"{m}\" in group \"{group}\"; expected one of {}",
                    topo.names.join(", ")
                )
            });
        }
    }
}

fn validate_network(v: &V<'_>, s: &Scenario, topo: Option<&Topology>) {
    let net = &s.network;
    let np = |k: &'static str| -> [PathSeg<'static>; 2] { ["network".into(), PathSeg::Key(k)] };
    v.probability(net.loss_probability, &np("loss_probability"));
    v.probability(net.duplicate_probability, &np("duplicate_probability"));
    v.latency(&net.latency, &np("latency"));
    if !v.at_most(
        net.links.len(),
        limits::MAX_LINKS,
        "link overrides",
        &np("link"),
    ) {
        return;
    }
    for (i, link) in net.links.iter().enumerate() {
        let p = |k: &'static str| -> [PathSeg<'static>; 4] {
            [
                "network".into(),
                "link".into(),
                PathSeg::Index(i),
                PathSeg::Key(k),
            ]
        };
        for (key, end) in [("from", &link.from), ("to", &link.to)] {
            if let (Some(topo), false) = (topo, end == "*") {
                v.node_ref(topo, end, false, &p(key));
            }
        }
        v.conditions(
            &["network".into(), "link".into(), PathSeg::Index(i)],
            link.latency.as_ref(),
            link.loss_probability,
            link.duplicate_probability,
        );
    }
}

fn validate_nemesis(v: &V<'_>, n: &Nemesis, duration: Duration) {
    let p = |k: &'static str| -> [PathSeg<'static>; 2] { ["nemesis".into(), PathSeg::Key(k)] };
    v.check(!n.faults.is_empty(), &p("faults"), || {
        "expected at least one fault kind".into()
    });
    let interval_ok = v.positive(n.interval, &p("interval"));
    let length_ok = v.positive(n.fault_duration, &p("fault_duration"));
    v.check(n.final_heal < duration, &p("final_heal"), || {
        format!("expected less than the run's duration ({duration})")
    });
    v.check(n.start < duration, &p("start"), || {
        format!("expected less than the run's duration ({duration})")
    });
    v.check(
        n.clock_drift_max > 0.0 && n.clock_drift_max < 1.0,
        &p("clock_drift_max"),
        || "expected a drift magnitude between 0 and 1 (exclusive)".into(),
    );
    v.positive(n.clock_jump_max, &p("clock_jump_max"));
    for (key, d) in [
        ("slow_latency_max", n.slow_latency_max),
        ("reorder_latency_max", n.reorder_latency_max),
    ] {
        if v.positive(d, &p(key)) {
            v.latency_at_most(d, &p(key));
        }
    }
    v.check(
        n.loss_probability_max > 0.0 && n.loss_probability_max <= 1.0,
        &p("loss_probability_max"),
        || {
            format!(
                "expected a probability above 0 and at most 1, found {}",
                n.loss_probability_max
            )
        },
    );
    if interval_ok && length_ok {
        let worst = nemesis_worst_case_faults(n, duration);
        v.check(worst <= limits::MAX_NEMESIS_FAULTS, &p("interval"), || {
            format!(
                "the nemesis could plan up to {worst} faults (gaps of interval/2 = {} between faults of fault_duration = {} from start = {} to duration - final_heal = {}); expected at most {} (the limit): raise interval or fault_duration",
                Duration(n.interval.as_nanos() / 2),
                n.fault_duration,
                n.start,
                Duration(duration.as_nanos().saturating_sub(n.final_heal.as_nanos())),
                limits::MAX_NEMESIS_FAULTS
            )
        });
    }
}

/// `[check.<name>]` tables (each checked by its check) and `[expect]`; every check that runs gets
/// its resolved table (defaults filled in).
fn validate_checks(v: &V<'_>, s: &mut Scenario, topo: &Topology) {
    let checks = s.families.checks(s);
    let check_names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    let runs = || {
        let protocols: Vec<&str> = s
            .cluster
            .roles
            .iter()
            .map(|r| r.protocol.as_str())
            .collect();
        protocols.join(", ")
    };
    for (name, table) in &s.check {
        let Some(check) = checks.iter().find(|c| c.name == name) else {
            v.check(false, &["check".into(), PathSeg::Key(name)], || {
                format!(
                    "the {name} check does not run for {}; its checks are: {}",
                    runs(),
                    check_names.join(", ")
                )
            });
            continue;
        };
        for e in (check.validate)(table, s, topo) {
            let mut at = vec!["check".to_string(), name.clone()];
            at.extend(e.path.iter().cloned());
            report_option(v, &at, e);
        }
    }
    if v.errors.borrow().is_empty() {
        let empty = toml::Table::new();
        let resolved: BTreeMap<String, toml::Table> = checks
            .iter()
            .map(|c| {
                let table = s.check.get(c.name).unwrap_or(&empty);
                (c.name.to_string(), (c.resolve)(table))
            })
            .collect();
        s.check = resolved;
    }
    for (i, name) in s.expect.failing_checks.iter().enumerate() {
        v.check(
            check_names.contains(&name.as_str()),
            &["expect".into(), "failing_checks".into(), i.into()],
            || {
                format!(
                    "unknown check \"{name}\" for {}; expected one of: {}",
                    runs(),
                    check_names.join(", ")
                )
            },
        );
    }
    v.check(
        s.expect.failing_checks.is_empty() || s.expect.verdict == Verdict::Fail,
        &["expect".into(), "verdict".into()],
        || "expected verdict = \"fail\" when failing_checks are listed".into(),
    );
}

fn validate_fault(v: &V<'_>, s: &Scenario, topo: &Topology, i: usize, f: &FaultSpec) {
    let p = |k: &'static str| -> [PathSeg<'static>; 3] {
        ["fault".into(), PathSeg::Index(i), PathSeg::Key(k)]
    };
    let kind = f.kind.name();
    v.check(f.at < s.duration, &p("at"), || {
        format!("expected a time before the end of the run ({})", s.duration)
    });
    if let Some(d) = f.duration {
        v.positive(d, &p("duration"));
    }
    let allowed: &[&str] = match f.kind {
        FaultKind::Partition => &["target", "shape", "groups", "order", "duration"],
        FaultKind::Isolate | FaultKind::Crash | FaultKind::Pause => &["target", "duration"],
        FaultKind::Cut => &["from", "to", "duration"],
        FaultKind::Degrade => &[
            "target",
            "from",
            "to",
            "latency",
            "loss_probability",
            "duplicate_probability",
            "reorder",
            "duration",
        ],
        FaultKind::Heal => &[],
        FaultKind::Restart | FaultKind::Resume => &["target"],
        FaultKind::ClockJump => &["target", "delta", "duration"],
        FaultKind::ClockDrift => &["target", "drift", "duration"],
    };
    let present = [
        ("target", f.target.is_some()),
        ("shape", f.shape.is_some()),
        ("groups", f.groups.is_some()),
        ("order", f.order.is_some()),
        ("from", f.from.is_some()),
        ("to", f.to.is_some()),
        ("delta", f.delta.is_some()),
        ("drift", f.drift.is_some()),
        ("latency", f.latency.is_some()),
        ("loss_probability", f.loss_probability.is_some()),
        ("duplicate_probability", f.duplicate_probability.is_some()),
        ("reorder", f.reorder.is_some()),
        ("duration", f.duration.is_some()),
    ];
    let mut keys_ok = true;
    for (key, is_present) in present {
        keys_ok &= v.check(!is_present || allowed.contains(&key), &p(key), || {
            let what = if allowed.is_empty() {
                "no other keys".to_string()
            } else {
                allowed.join(", ")
            };
            format!("`{key}` does not apply to a {kind} fault (it takes {what})")
        });
    }
    if !keys_ok {
        // The rest assumes the keys fit the kind; one problem per misplaced key is enough.
        return;
    }
    let require = |key: &'static str, present: bool| {
        v.check(present, &p("kind"), || {
            format!("a {kind} fault needs `{key}`")
        })
    };
    let target = |dynamic: bool| {
        if let Some(t) = &f.target {
            v.node_ref(topo, t, dynamic, &p("target"));
        }
    };
    match f.kind {
        FaultKind::Partition => validate_partition(v, topo, i, f),
        FaultKind::Cut => {
            for (key, end) in [("from", &f.from), ("to", &f.to)] {
                if let Some(r) = end.as_deref() {
                    v.node_ref(topo, r, true, &p(key));
                } else {
                    require(key, false);
                }
            }
        }
        FaultKind::Degrade => validate_degrade(v, topo, i, f, &p),
        FaultKind::Heal => {}
        FaultKind::Isolate | FaultKind::Crash | FaultKind::Pause => {
            require("target", f.target.is_some());
            target(true);
        }
        FaultKind::ClockJump => {
            require("target", f.target.is_some());
            target(true);
            require("delta", f.delta.is_some());
        }
        FaultKind::ClockDrift => {
            require("target", f.target.is_some());
            target(true);
            if let Some(d) = f.drift {
                v.drift(d, &p("drift"));
            } else {
                require("drift", false);
            }
        }
        FaultKind::Restart | FaultKind::Resume => target(false),
    }
    validate_undo_order(v, s, i, f);
}

fn validate_partition(v: &V<'_>, topo: &Topology, i: usize, f: &FaultSpec) {
    let p = |k: &'static str| -> [PathSeg<'static>; 3] {
        ["fault".into(), PathSeg::Index(i), PathSeg::Key(k)]
    };
    v.check(f.shape.is_some() != f.groups.is_some(), &p("kind"), || {
        "a partition needs exactly one of `shape` (halves, random-halves, majorities-ring, bridge, random-node) or `groups`".into()
    });
    if let Some(groups) = &f.groups {
        v.check(!groups.is_empty(), &p("groups"), || {
            "expected at least one side (servers in no side form one more)".into()
        });
        let mut seen: BTreeSet<u32> = BTreeSet::new();
        for (g, side) in groups.iter().enumerate() {
            let sp = [
                "fault".into(),
                PathSeg::Index(i),
                "groups".into(),
                PathSeg::Index(g),
            ];
            v.check(!side.is_empty(), &sp, || "expected a non-empty side".into());
            for (k, r) in side.iter().enumerate() {
                let rp = [
                    "fault".into(),
                    PathSeg::Index(i),
                    "groups".into(),
                    PathSeg::Index(g),
                    PathSeg::Index(k),
                ];
                if !v.node_ref(topo, r, false, &rp) {
                    continue;
                }
                for id in topo.resolve_static(r).unwrap_or_default() {
                    if !v.check(seen.insert(id.0), &rp, || {
                        format!("node {} is on two sides", topo.name(id))
                    }) {
                        break;
                    }
                }
            }
        }
        if groups.len() == 1 {
            v.check(
                topo.servers.iter().any(|s| !seen.contains(&s.0)),
                &p("groups"),
                || "a single side must leave some server out (they form the other side)".into(),
            );
        }
    }
    if let Some(t) = &f.target {
        let applies = v.check(
            f.shape == Some(PartitionShape::Halves),
            &p("target"),
            || {
                "`target` only applies to shape = \"halves\" (the targets go to the minority)"
                    .into()
            },
        );
        if applies {
            v.node_ref(topo, t, true, &p("target"));
        }
    }
    if f.shape.is_some() {
        v.check(topo.servers.len() >= 2, &p("shape"), || {
            "a partition needs at least two servers".into()
        });
    }
    if let Some(order) = &f.order {
        validate_order(v, topo, f.shape, order, &p("order"));
    }
}

/// A partition's `order`: only with shape `majorities-ring` or `bridge`, and every server once.
fn validate_order(
    v: &V<'_>,
    topo: &Topology,
    shape: Option<PartitionShape>,
    order: &[String],
    at: &[PathSeg<'_>],
) {
    let shaped = v.check(
        matches!(
            shape,
            Some(PartitionShape::MajoritiesRing | PartitionShape::Bridge)
        ),
        at,
        || "`order` only applies to shape = \"majorities-ring\" or \"bridge\"".into(),
    );
    if !shaped {
        return;
    }
    let mut ids: Vec<u32> = order
        .iter()
        .filter_map(|name| topo.node(name))
        .filter(|id| topo.servers.contains(id))
        .map(|id| id.0)
        .collect();
    ids.sort_unstable();
    let servers: Vec<u32> = topo.servers.iter().map(|s| s.0).collect();
    v.check(ids.len() == order.len() && ids == servers, at, || {
        format!(
            "expected every server exactly once, by name (a permutation of {})",
            topo.names_of(&topo.servers).join(", ")
        )
    });
}

/// A `degrade` fault: its links (`target`, or both `from` and `to`) and at least one condition.
fn validate_degrade(
    v: &V<'_>,
    topo: &Topology,
    i: usize,
    f: &FaultSpec,
    p: &dyn Fn(&'static str) -> [PathSeg<'static>; 3],
) {
    let one_way = f.from.is_some() || f.to.is_some();
    v.check(f.target.is_some() != one_way, &p("kind"), || {
        "a degrade fault needs either `target` (every link to and from those nodes) or `from` \
         and `to` (one-way links), not both"
            .into()
    });
    if let Some(t) = &f.target {
        v.node_ref(topo, t, true, &p("target"));
    } else {
        for (key, value) in [("from", &f.from), ("to", &f.to)] {
            if let Some(r) = value.as_deref() {
                v.node_ref(topo, r, true, &p(key));
            } else {
                v.check(false, &p("kind"), || {
                    format!("a degrade fault with one-way links needs `{key}`")
                });
            }
        }
    }
    v.check(
        f.latency.is_some()
            || f.loss_probability.is_some()
            || f.duplicate_probability.is_some()
            || f.reorder.is_some(),
        &p("kind"),
        || {
            "a degrade fault needs at least one of `latency`, `loss_probability`, \
             `duplicate_probability`, `reorder`"
                .into()
        },
    );
    v.conditions(
        &["fault".into(), PathSeg::Index(i)],
        f.latency.as_ref(),
        f.loss_probability,
        f.duplicate_probability,
    );
}

/// Undo-only faults (heal, restart, resume) must come after something they can undo.
fn validate_undo_order(v: &V<'_>, s: &Scenario, i: usize, f: &FaultSpec) {
    let kind = f.kind.name();
    let undoes: &[FaultKind] = match f.kind {
        FaultKind::Heal => &[FaultKind::Partition, FaultKind::Isolate, FaultKind::Cut],
        FaultKind::Restart => &[FaultKind::Crash],
        FaultKind::Resume => &[FaultKind::Pause],
        _ => return,
    };
    let nemesis_can = s.nemesis.is_some();
    let earlier = s
        .faults
        .iter()
        .enumerate()
        .any(|(j, g)| j != i && undoes.contains(&g.kind) && g.at <= f.at);
    v.check(
        earlier || nemesis_can,
        &["fault".into(), i.into(), "at".into()],
        || {
            let first = s
                .faults
                .iter()
                .filter(|g| undoes.contains(&g.kind))
                .map(|g| g.at)
                .min();
            let names: Vec<&str> = undoes.iter().map(|k| k.name()).collect();
            match first {
                Some(t) => format!(
                    "{kind} at {} comes before the first {} (at {t})",
                    f.at,
                    names.join("/")
                ),
                None => format!(
                    "{kind} at {} undoes nothing: there is no {} fault",
                    f.at,
                    names.join("/")
                ),
            }
        },
    );
}

fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= limits::MAX_NODE_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
