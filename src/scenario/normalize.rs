//! The shorthand forms, turned into roles and client groups.
//!
//! `[cluster] protocol = "raft"` with `nodes = 5` is one role named after its protocol, with
//! nodes `n1`..`n5` and the options of the top-level `[raft]` table. `[workload]` is one client
//! group named `c` (so its nodes are `c1`..`cN`) with `clients` nodes (default 2), running the
//! first workload the protocol serves, with the rest of the table as its options; a protocol that
//! serves no workload gets no group (and `clients` other than 0 is an error). After this, the
//! rest of faultline sees only roles and groups.

use std::path::Path;

use super::error::PathSeg;
use super::{ClientGroup, NodeList, RoleSpec, Scenario, ScenarioError};

/// The shorthand client group's name (its nodes are `c1`..`cN`).
pub const SHORTHAND_CLIENTS: &str = "c";

/// Clients of the shorthand `[workload]` table when it does not say `clients`.
const DEFAULT_SHORTHAND_CLIENTS: i64 = 2;

/// Moves the shorthand forms of `s` into roles and client groups; `ignored` are the top-level
/// keys the `Scenario` struct does not know (candidate `[<protocol>]` option tables).
pub fn normalize(
    s: &mut Scenario,
    path: &Path,
    text: &str,
    ignored: &[String],
) -> Vec<ScenarioError> {
    let err =
        |keys: &[PathSeg<'_>], message: String| ScenarioError::at_path(path, text, keys, message);
    let shorthand = s.cluster.protocol.clone();
    let mut errors = unknown_keys(ignored, shorthand.as_deref(), &*s.families, path, text);
    let section_used = ignored
        .iter()
        .any(|k| Some(k.split('.').next().unwrap_or(k)) == shorthand.as_deref());
    match (shorthand, s.cluster.nodes.take()) {
        (Some(protocol), nodes) => {
            if !s.cluster.roles.is_empty() {
                errors.push(err(
                    &["cluster".into(), "protocol".into()],
                    "expected either `protocol` and `nodes` (one role) or [[cluster.role]] tables, not both".into(),
                ));
            }
            let Some(nodes) = nodes else {
                errors.push(err(
                    &["cluster".into()],
                    "missing `nodes`: expected a count or a list of names beside `protocol`"
                        .into(),
                ));
                return errors;
            };
            // The `[<protocol>]` table, read from the text only when the file has one.
            let document: toml::Table = if section_used {
                toml::from_str(text).unwrap_or_default()
            } else {
                toml::Table::new()
            };
            let options = match document.get(&protocol) {
                Some(toml::Value::Table(t)) => t.clone(),
                Some(_) => {
                    errors.push(err(
                        &[PathSeg::Key(&protocol)],
                        format!("expected a table of {protocol} options"),
                    ));
                    toml::Table::new()
                }
                None => toml::Table::new(),
            };
            // Spelled out as names, so the resolved scenario loads back as the same cluster (a
            // count would name the nodes after the role); a count outside the limits stays for
            // validation to report.
            let nodes = match nodes {
                NodeList::Count(n) if (1..=super::limits::MAX_SERVERS).contains(&n) => {
                    NodeList::Names((1..=n).map(|i| format!("n{i}")).collect())
                }
                other => other,
            };
            s.cluster.roles.insert(
                0,
                RoleSpec {
                    name: protocol.clone(),
                    protocol,
                    nodes,
                    options,
                    shorthand: true,
                },
            );
        }
        (None, Some(_)) => errors.push(err(
            &["cluster".into(), "nodes".into()],
            "`nodes` belongs with `protocol` (one role); with [[cluster.role]] tables, give each role its nodes".into(),
        )),
        (None, None) => {
            if s.cluster.roles.is_empty() {
                errors.push(err(
                    &["cluster".into()],
                    "expected `protocol` and `nodes`, or at least one [[cluster.role]]".into(),
                ));
            }
        }
    }
    s.cluster.protocol = None;
    if let Some(mut table) = s.workload.take() {
        if !s.clients.is_empty() {
            errors.push(err(
                &["workload".into()],
                "expected either [workload] (one client group) or [[clients]] tables, not both"
                    .into(),
            ));
        }
        let count = table.remove("clients");
        shorthand_group(s, table, count, path, text, &mut errors);
    } else if s.clients.is_empty() {
        shorthand_group(s, toml::Table::new(), None, path, text, &mut errors);
    }
    errors
}

/// One error for each top-level key of the file that the format does not know, except the
/// options table of the shorthand `protocol` (`ignored` as `serde_ignored` names them).
pub fn unknown_keys(
    ignored: &[String],
    protocol: Option<&str>,
    families: &dyn super::Families,
    path: &Path,
    text: &str,
) -> Vec<ScenarioError> {
    let mut errors = Vec::new();
    for key in ignored {
        // serde_ignored names nested keys with dots; only top-level keys can be unknown here.
        let top = key.split('.').next().unwrap_or(key);
        if Some(top) == protocol {
            continue;
        }
        let message = if families.serves(top).is_some() {
            format!(
                "[{top}] holds options of the {top} protocol, which no role runs here; with roles, put them in the role's `options`"
            )
        } else {
            format!(
                "unknown key `{top}`; expected one of: name, description, seed, duration, cluster, network, clock, fault, nemesis, workload, clients, check, expect, or a table named after [cluster] protocol"
            )
        };
        errors.push(ScenarioError::at_key(
            path,
            text,
            &[PathSeg::Key(top)],
            message,
        ));
    }
    errors
}

/// Adds the client group of a `[workload]` table (or of its absence) to a shorthand cluster.
fn shorthand_group(
    s: &mut Scenario,
    options: toml::Table,
    count: Option<toml::Value>,
    path: &Path,
    text: &str,
    errors: &mut Vec<ScenarioError>,
) {
    let at = ["workload".into(), "clients".into()];
    let written = count.is_some();
    let count = match count {
        None => DEFAULT_SHORTHAND_CLIENTS,
        Some(toml::Value::Integer(n)) => n,
        Some(other) => {
            errors.push(ScenarioError::at_path(
                path,
                text,
                &at,
                format!(
                    "expected a whole number from 0 to {}, found {other}",
                    u32::MAX
                ),
            ));
            return;
        }
    };
    let Some(role) = s.cluster.roles.first().filter(|r| r.shorthand) else {
        if written || !options.is_empty() {
            errors.push(ScenarioError::at_path(
                path,
                text,
                &["workload".into()],
                "[workload] goes with the shorthand `[cluster] protocol`; with roles, describe clients in [[clients]] tables".to_string(),
            ));
        }
        return;
    };
    let Some(workload) = s.families.serves(&role.protocol).and_then(|w| w.first()) else {
        // An unknown protocol is reported by validation; one that serves no clients gets none.
        if written && count != 0 && s.families.serves(&role.protocol).is_some() {
            errors.push(ScenarioError::at_path(
                path,
                text,
                &at,
                format!(
                    "the {} protocol serves no clients; expected clients = 0",
                    role.protocol
                ),
            ));
        }
        return;
    };
    let Ok(count) = u32::try_from(count) else {
        errors.push(ScenarioError::at_path(
            path,
            text,
            &at,
            format!(
                "expected a whole number from 0 to {}, found {count}",
                u32::MAX
            ),
        ));
        return;
    };
    if count == 0 && options.is_empty() {
        return;
    }
    s.clients.push(ClientGroup {
        name: SHORTHAND_CLIENTS.into(),
        workload: (*workload).into(),
        count,
        talks_to: vec![role.name.clone()],
        options,
        shorthand: true,
    });
}
