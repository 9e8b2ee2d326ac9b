//! Who is in the cluster: node names, roles, named groups, and each client's home server.
//!
//! Node ids are indexes in scenario order: servers first (`n1`..`nN` or the listed names), then
//! clients (`c1`..`cK`). Names appear in traces and reports; ids index per-node vectors.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::process::NodeId;
use crate::scenario::{NodeList, Scenario};

/// Names with a fixed meaning in node references; no node or group may use them.
pub const RESERVED_NAMES: [&str; 6] = ["all", "servers", "clients", "random", "leader", "*"];

/// What a node runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A protocol node (`[cluster] protocol`).
    Server,
    /// A workload client.
    Client,
}

/// The cluster's shape, derived from a scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Topology {
    /// Node names, by id.
    pub names: Vec<String>,
    /// Roles, by id.
    pub roles: Vec<Role>,
    /// Server ids in scenario order.
    pub servers: Vec<NodeId>,
    /// Client ids in order (`c1` first).
    pub clients: Vec<NodeId>,
    /// For each node, its home server (clients only).
    pub homes: Vec<Option<NodeId>>,
    /// Named groups from `[cluster.groups]`, plus `servers`, `clients` and `all`.
    pub groups: BTreeMap<String, Vec<NodeId>>,
}

impl Topology {
    /// Builds the topology. Names are taken as given: validation has already rejected duplicates
    /// and unknown group members (unknown members are skipped here).
    pub fn new(scenario: &Scenario) -> Topology {
        let mut names: Vec<String> = match &scenario.cluster.nodes {
            NodeList::Count(n) => (1..=*n).map(|i| format!("n{i}")).collect(),
            NodeList::Names(names) => names.clone(),
        };
        let server_count = names.len();
        names.extend((1..=scenario.workload.clients).map(|i| format!("c{i}")));
        let ids =
            |range: std::ops::Range<usize>| range.map(|i| NodeId(i as u32)).collect::<Vec<_>>();
        let servers = ids(0..server_count);
        let clients = ids(server_count..names.len());
        let mut roles = vec![Role::Server; server_count];
        roles.resize(names.len(), Role::Client);
        let mut homes = vec![None; names.len()];
        for (i, &c) in clients.iter().enumerate() {
            if !servers.is_empty() {
                homes[c.index()] = Some(servers[i % servers.len()]);
            }
        }
        let mut topo = Topology {
            names,
            roles,
            servers,
            clients,
            homes,
            groups: BTreeMap::new(),
        };
        let mut groups = BTreeMap::new();
        for (group, members) in &scenario.cluster.groups {
            let ids = members.iter().filter_map(|m| topo.node(m)).collect();
            groups.insert(group.clone(), ids);
        }
        groups.insert("servers".into(), topo.servers.clone());
        groups.insert("clients".into(), topo.clients.clone());
        groups.insert("all".into(), ids(0..topo.names.len()));
        topo.groups = groups;
        topo
    }

    /// Number of nodes (servers and clients).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True if there are no nodes at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The id of the node called `name`.
    pub fn node(&self, name: &str) -> Option<NodeId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| NodeId(i as u32))
    }

    /// The name of `id`.
    pub fn name(&self, id: NodeId) -> &str {
        &self.names[id.index()]
    }

    /// The nodes a static reference names: a node, a group, `all`/`*`, `servers` or `clients`.
    /// `None` if the name is unknown (dynamic references such as `leader` are not static).
    pub fn resolve_static(&self, reference: &str) -> Option<Vec<NodeId>> {
        if reference == "*" {
            return self.groups.get("all").cloned();
        }
        if let Some(id) = self.node(reference) {
            return Some(vec![id]);
        }
        self.groups.get(reference).cloned()
    }

    /// Renders a set of nodes as names, for traces and reports.
    pub fn names_of(&self, ids: &[NodeId]) -> Vec<String> {
        ids.iter().map(|&id| self.name(id).to_string()).collect()
    }
}
