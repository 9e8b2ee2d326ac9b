//! Helpers the families' narrators share ([`crate::family::Narrator`]): the cast of a run by
//! node index (observations name nodes by their topology index), and the short forms story
//! lines use for times, counts and lists.

use crate::family::CastMember;
use crate::sim::trace::TraceEvent;

/// The names of the servers (role members, not clients) that run `protocol`, in cast order.
pub fn servers_running<'a>(
    cast: &'a [CastMember],
    protocol: &'a str,
) -> impl Iterator<Item = &'a str> {
    cast.iter()
        .filter(move |m| !m.client && m.runs == protocol)
        .map(|m| m.name.as_str())
}

/// The cast of a run, looked up by node index or name.
#[derive(Clone, Debug, Default)]
pub struct Cast {
    members: Vec<CastMember>,
}

impl Cast {
    /// The cast, in topology order (a node's index in observations is its place here).
    pub fn new(cast: &[CastMember]) -> Cast {
        Cast {
            members: cast.to_vec(),
        }
    }

    /// True if some node runs one of `protocols` (a protocol or workload name).
    pub fn runs_any(&self, protocols: &[&str]) -> bool {
        self.members
            .iter()
            .any(|m| protocols.contains(&m.runs.as_str()))
    }

    /// What node `name` runs (`""` for a node not in the cast, e.g. `world`).
    pub fn runs(&self, name: &str) -> &str {
        self.members
            .iter()
            .find(|m| m.name == name)
            .map_or("", |m| m.runs.as_str())
    }

    /// The name of the node a JSON value names: its index (how observations write a
    /// `NodeId`) or its name; `?` if neither.
    pub fn name(&self, value: Option<&serde_json::Value>) -> String {
        match value {
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .and_then(|i| self.members.get(i as usize))
                .map_or_else(|| format!("node {n}"), |m| m.name.clone()),
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => "?".to_string(),
        }
    }
}

/// The observation of an `observe` line (`None` for any other line).
pub fn observation<'e>(
    event: &'e TraceEvent<'_>,
) -> Option<&'e serde_json::Map<String, serde_json::Value>> {
    if event.kind != "observe" {
        return None;
    }
    event.get("obs")?.as_object()
}

/// An observation's tag: its `fact` or, for families that tag by `type`, its `type`.
pub fn tag(obs: &serde_json::Map<String, serde_json::Value>) -> &str {
    obs.get("fact")
        .or_else(|| obs.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

/// The field `key` of a JSON object as an unsigned integer (0 if absent).
pub fn num(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> u64 {
    obj.get(key).and_then(|v| v.as_u64()).unwrap_or(0)
}

/// The field `key` of a JSON object as text (`""` if absent).
pub fn text<'a>(obj: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> &'a str {
    obj.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

/// A duration in nanoseconds as people read it: `850 ms`, `2.5 s`.
pub fn duration(ns: u64) -> String {
    if ns < 1_000_000_000 {
        format!("{} ms", ns / 1_000_000)
    } else {
        let s = format!("{:.1}", ns as f64 / 1e9);
        format!("{} s", s.trim_end_matches(".0"))
    }
}

/// Names as a list: `a`, `a and b`, `a, b and c`.
pub fn list<S: AsRef<str>>(names: &[S]) -> String {
    match names {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// `1 write`, `3 writes`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The start of the simulated second `t_ns` falls in.
pub fn second_of(t_ns: u64) -> u64 {
    t_ns / 1_000_000_000
}

/// Helpers for the narrators' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::family::{CastMember, Narration, Narrator};
    use crate::sim::trace::TraceEvent;

    /// A cast of (name, is a client, what it runs).
    pub(crate) fn cast(members: &[(&str, bool, &str)]) -> Vec<CastMember> {
        members
            .iter()
            .map(|(name, client, runs)| CastMember {
                name: name.to_string(),
                client: *client,
                part: "p".into(),
                runs: runs.to_string(),
            })
            .collect()
    }

    /// Feeds trace `lines` to the narrator `made` for a cast, then finishes at `end_ns`.
    pub(crate) fn tell<S: AsRef<str>>(
        made: Option<Box<dyn Narrator>>,
        lines: &[S],
        end_ns: u64,
    ) -> Narration {
        let mut n = made.expect("the cast has a narrator");
        let mut out = Narration::default();
        for l in lines {
            n.event(&TraceEvent::parse(l.as_ref()).unwrap(), &mut out);
        }
        n.finish(end_ns, &mut out);
        out
    }

    /// The story's sentences, in order.
    pub(crate) fn texts(out: &Narration) -> Vec<&str> {
        out.lines.iter().map(|l| l.text.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_read_naturally() {
        assert_eq!(duration(850_000_000), "850 ms");
        assert_eq!(duration(2_500_000_000), "2.5 s");
        assert_eq!(duration(10_000_000_000), "10 s");
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
        assert_eq!(list(&["a"]), "a");
        assert_eq!(count(1, "hint"), "1 hint");
        assert_eq!(count(2, "hint"), "2 hints");
    }

    #[test]
    fn node_indices_become_names() {
        let cast = Cast::new(&[CastMember {
            name: "n1".into(),
            client: false,
            part: "r".into(),
            runs: "raft".into(),
        }]);
        assert_eq!(cast.name(Some(&serde_json::json!(0))), "n1");
        assert_eq!(cast.name(Some(&serde_json::json!(7))), "node 7");
        assert_eq!(cast.runs("n1"), "raft");
        assert!(cast.runs_any(&["raft"]));
    }
}
