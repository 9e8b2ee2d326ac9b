//! What the scenario loader and the simulator need from the families a scenario is loaded with,
//! seen from below the family interface.
//!
//! Layering (docs/architecture.md): `scenario/` sits below `family` (the family interface
//! names [`Scenario`] in what it hands a protocol), so it cannot name a family's types. A
//! scenario instead holds its families as a [`Families`] trait object: the loader asks it which
//! protocols and workloads exist, has it check each role's and client group's options and each
//! check's table, and the simulator has it build every node's process. `family::Registry`
//! implements it (the glue is in `check`, the lowest layer that knows every check), and
//! `Scenario::registry` (defined in `family`) gives the registry back to the layers above.
//!
//! Also here: [`OptionError`] and [`parse_options`], the problems of an options table located
//! inside it, which the loader turns into `file:line:col` errors.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::Scenario;
use super::topology::Topology;
use crate::process::ProcessFactory;
use crate::process::fold::Fold;

/// The families a scenario is loaded with, as the loader and the simulator use them
/// (implemented by `family::Registry`).
pub trait Families: Send + Sync + fmt::Debug {
    /// Every protocol's name, in registration order.
    fn protocols(&self) -> Vec<&'static str>;
    /// Every workload's name, in registration order.
    fn workloads(&self) -> Vec<&'static str>;
    /// The workloads protocol `name` serves (the first is the one the shorthand `[workload]`
    /// table gets); `None` if there is no such protocol.
    fn serves(&self, protocol: &str) -> Option<&'static [&'static str]>;
    /// True if a workload is called `name`.
    fn has_workload(&self, name: &str) -> bool {
        self.workloads().contains(&name)
    }
    /// Checks the options of role `role` of `scenario` (every problem) and returns them with
    /// their defaults filled in; `None` if its protocol is unknown. `checking` is false when
    /// the simulator configures a validated scenario.
    fn configure_role(
        &self,
        scenario: &Scenario,
        topology: &Topology,
        role: usize,
    ) -> Option<Result<toml::Table, Vec<OptionError>>>;
    /// The same for client group `group`; `None` if its workload is unknown.
    fn configure_group(
        &self,
        scenario: &Scenario,
        topology: &Topology,
        group: usize,
    ) -> Option<Result<toml::Table, Vec<OptionError>>>;
    /// The checks that apply to `scenario` (generic, then its families'), in report order, with
    /// what validation needs of each.
    fn checks(&self, scenario: &Scenario) -> Vec<CheckOptions>;
    /// The process factory of every node of a validated scenario, by node id.
    fn factories(&self, scenario: &Scenario, topology: &Arc<Topology>) -> Vec<ProcessFactory>;
    /// The folds of a run of a validated scenario: the readers its checks want fed while the run
    /// goes (see [`Fold`]); none by default.
    fn folds(&self, _scenario: &Scenario, _topology: &Arc<Topology>) -> Vec<Box<dyn Fold>> {
        Vec::new()
    }
    /// The implementing value (for `Scenario::registry` to recover the `family::Registry`).
    fn as_any(&self) -> &dyn Any;
}

/// What the loader needs of one check: its name and how to check and resolve its
/// `[check.<name>]` table (see `family::CheckInfo`).
#[derive(Copy, Clone, Debug)]
pub struct CheckOptions {
    /// The check's name.
    pub name: &'static str,
    /// Checks its table and returns every problem.
    pub validate: fn(&toml::Table, &Scenario, &Topology) -> Vec<OptionError>,
    /// Its (valid) table with every default filled in.
    pub resolve: fn(&toml::Table) -> toml::Table,
}

/// No families (a scenario that was not loaded, e.g. deserialized directly): nothing is known.
#[derive(Debug)]
pub struct NoFamilies;

impl Families for NoFamilies {
    fn protocols(&self) -> Vec<&'static str> {
        Vec::new()
    }
    fn workloads(&self) -> Vec<&'static str> {
        Vec::new()
    }
    fn serves(&self, _: &str) -> Option<&'static [&'static str]> {
        None
    }
    fn configure_role(
        &self,
        _: &Scenario,
        _: &Topology,
        _: usize,
    ) -> Option<Result<toml::Table, Vec<OptionError>>> {
        None
    }
    fn configure_group(
        &self,
        _: &Scenario,
        _: &Topology,
        _: usize,
    ) -> Option<Result<toml::Table, Vec<OptionError>>> {
        None
    }
    fn checks(&self, _: &Scenario) -> Vec<CheckOptions> {
        Vec::new()
    }
    fn factories(&self, _: &Scenario, _: &Arc<Topology>) -> Vec<ProcessFactory> {
        Vec::new()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The families of a scenario that was not loaded.
pub fn no_families() -> Arc<dyn Families> {
    Arc::new(NoFamilies)
}

/// A problem with one value of an options table: its key path inside the table (empty: the
/// table itself) and what was expected. The scenario loader turns it into a
/// `file:line:col` error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// Keys (and list indexes, as decimal strings) from the options table to the value.
    pub path: Vec<String>,
    /// True if `path` starts at the role or client group itself (e.g. its `nodes`) rather than
    /// inside its options table.
    pub of_role: bool,
    /// True if the error is about the last key itself (an unknown key), not its value.
    pub at_key: bool,
    /// What is wrong and what was expected.
    pub message: String,
}

impl OptionError {
    /// A problem with the value at `key` of the table.
    pub fn at(key: &str, message: impl Into<String>) -> OptionError {
        OptionError::at_path(&[key], message)
    }

    /// A problem with the value at `path`.
    pub fn at_path(path: &[&str], message: impl Into<String>) -> OptionError {
        OptionError {
            path: path.iter().map(|s| s.to_string()).collect(),
            of_role: false,
            at_key: false,
            message: message.into(),
        }
    }

    /// A problem with the role's (or client group's) own `key`, such as `nodes` or `count`.
    pub fn of_role(key: &str, message: impl Into<String>) -> OptionError {
        OptionError {
            of_role: true,
            ..OptionError::at(key, message)
        }
    }
}

/// Parses an options table into `T` (a `serde` struct with `deny_unknown_fields` and defaults),
/// reporting a wrong type or an unknown key at its path inside the table.
pub fn parse_options<T: DeserializeOwned>(table: &toml::Table) -> Result<T, Vec<OptionError>> {
    let value = toml::Value::Table(table.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path: Vec<String> = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        let raw = e.inner().to_string().trim().replace('\n', " ");
        // toml's value deserializer names the key at the end (" in `bugs`"): the path says it.
        let raw = match raw.rfind(" in `") {
            Some(i) if raw.ends_with('`') => raw[..i].to_string(),
            _ => raw,
        };
        let message = super::error::scenario_language(&raw, None);
        // An unknown key: point at the key itself (serde_path_to_error's path may end at it or at
        // the table holding it).
        let mut path = path;
        let unknown = unknown_field(&message);
        if let Some(key) = &unknown
            && path.last() != Some(key)
        {
            path.push(key.clone());
        }
        vec![OptionError {
            path,
            of_role: false,
            at_key: unknown.is_some(),
            message,
        }]
    })
}

/// The key named by serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}
