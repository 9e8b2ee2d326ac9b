//! Who is in the cluster: node names, roles, named groups, and each client's home server.
//!
//! Node ids are indexes in scenario order: the nodes of every role first (role by role, each
//! `<role>1`..`<role>N`, `n1`..`nN` for the shorthand role, or the listed names), then the
//! clients of every client group (`<group>1`..`<group>K`; `c1`..`cK` for the shorthand group).
//! Names appear in traces and reports; ids index per-node vectors.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{NodeList, RoleSpec, Scenario};
use crate::process::NodeId;

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
#[derive(Clone, Debug, Default, Serialize)]
pub struct Topology {
    /// Node names, by id.
    pub names: Vec<String>,
    /// Roles, by id.
    pub roles: Vec<Role>,
    /// For each node, the index of its role (servers) or client group (clients) in the
    /// scenario's `cluster.roles` or `clients`.
    pub part: Vec<usize>,
    /// Server ids in scenario order.
    pub servers: Vec<NodeId>,
    /// Client ids in order (the first group's first).
    pub clients: Vec<NodeId>,
    /// For each node, its home server (clients only).
    pub homes: Vec<Option<NodeId>>,
    /// Named groups from `[cluster.groups]`, every role and client group by name, plus
    /// `servers`, `clients` and `all`.
    pub groups: BTreeMap<String, Vec<NodeId>>,
}

/// The names of a role's or client group's nodes: the listed names, or `<prefix>1`..`<prefix>N`.
pub fn node_names(nodes: &NodeList, prefix: &str) -> Vec<String> {
    match nodes {
        NodeList::Count(n) => (1..=*n).map(|i| format!("{prefix}{i}")).collect(),
        NodeList::Names(names) => names.clone(),
    }
}

/// The prefix of a role's counted node names: `n` for the shorthand role, else its name.
pub fn role_prefix(role: &RoleSpec) -> &str {
    if role.shorthand { "n" } else { &role.name }
}

impl Topology {
    /// Builds the topology. Names are taken as given: validation has already rejected duplicates
    /// and unknown group members (unknown members are skipped here). A client's home is a node
    /// of the first role it talks to, round robin over that group's clients.
    pub fn new(scenario: &Scenario) -> Topology {
        let mut names = Vec::new();
        let mut part = Vec::new();
        let mut by_part: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        let mut role_nodes: Vec<Vec<NodeId>> = Vec::new();
        for (i, role) in scenario.cluster.roles.iter().enumerate() {
            let mut ids = Vec::new();
            for name in node_names(&role.nodes, role_prefix(role)) {
                ids.push(NodeId(names.len() as u32));
                names.push(name);
                part.push(i);
            }
            by_part.entry(role.name.clone()).or_default().extend(&ids);
            role_nodes.push(ids);
        }
        let server_count = names.len();
        let mut homes = vec![None; server_count];
        for (i, group) in scenario.clients.iter().enumerate() {
            let home_role = group
                .talks_to
                .first()
                .and_then(|r| scenario.cluster.roles.iter().position(|x| &x.name == r))
                .map_or(&[][..], |r| &role_nodes[r][..]);
            let mut ids = Vec::new();
            for k in 0..group.count {
                ids.push(NodeId(names.len() as u32));
                names.push(format!("{}{}", group.name, k + 1));
                part.push(i);
                homes
                    .push((!home_role.is_empty()).then(|| home_role[k as usize % home_role.len()]));
            }
            by_part.entry(group.name.clone()).or_default().extend(&ids);
        }
        let ids =
            |range: std::ops::Range<usize>| range.map(|i| NodeId(i as u32)).collect::<Vec<_>>();
        let servers = ids(0..server_count);
        let clients = ids(server_count..names.len());
        let mut roles = vec![Role::Server; server_count];
        roles.resize(names.len(), Role::Client);
        let mut topo = Topology {
            names,
            roles,
            part,
            servers,
            clients,
            homes,
            groups: BTreeMap::new(),
        };
        let mut groups = by_part;
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
