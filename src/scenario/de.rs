//! Hand-written `Deserialize` for the scenario values that take more than one form.
//!
//! serde's `untagged` enums try each form in turn and, when none fits, say only "data did not
//! match any variant of untagged enum ...": the problem inside the form the user meant (a missing
//! `max` in a latency table, a negative node count) is lost. These visitors pick the form from
//! the value's TOML type and let that form's own error through, with its place in the file.

use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, Unexpected};

use super::{Duration, LatencyDistribution, LatencySpec, NodeList, limits};

impl<'de> Deserialize<'de> for NodeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = NodeList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a node count from 1 to {} (such as 5) or a list of node names (such as [\"a\", \"b\"])",
                    limits::MAX_SERVERS
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeList, E> {
                u32::try_from(v)
                    .map(NodeList::Count)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeList, E> {
                u32::try_from(v)
                    .map(NodeList::Count)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<NodeList, A::Error> {
                Vec::<String>::deserialize(SeqAccessDeserializer::new(seq)).map(NodeList::Names)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for LatencySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = LatencySpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a latency: a duration such as \"5ms\", or a table such as { distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LatencySpec, E> {
                Duration::parse(v)
                    .map(LatencySpec::Constant)
                    .map_err(E::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<LatencySpec, A::Error> {
                LatencyDistribution::deserialize(MapAccessDeserializer::new(map))
                    .map(LatencySpec::Distribution)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct T {
        latency: LatencySpec,
    }

    #[derive(Debug, serde::Deserialize)]
    struct N {
        #[allow(dead_code)]
        nodes: NodeList,
    }

    #[test]
    fn latencies_parse_in_both_forms() {
        let t: T = toml::from_str("latency = \"5ms\"").unwrap();
        assert_eq!(t.latency, LatencySpec::Constant(Duration::from_millis(5)));
        let t: T =
            toml::from_str("latency = { distribution = \"constant\", value = \"2ms\" }").unwrap();
        assert_eq!(
            t.latency,
            LatencySpec::Distribution(LatencyDistribution::Constant {
                value: Duration::from_millis(2)
            })
        );
    }

    #[test]
    fn a_latency_table_reports_its_own_problem_not_the_enum() {
        let err = toml::from_str::<T>("latency = { distribution = \"uniform\", min = \"1ms\" }")
            .unwrap_err();
        assert!(err.message().contains("missing field `max`"), "{err}");
        let err = toml::from_str::<T>("latency = \"5\"").unwrap_err();
        assert!(err.message().contains("bare number"), "{err}");
    }

    #[test]
    fn node_counts_out_of_range_name_the_accepted_forms() {
        let err = toml::from_str::<N>("nodes = -3").unwrap_err();
        assert!(
            err.message().contains("a node count from 1 to 256"),
            "{err}"
        );
        assert!(!err.message().contains("untagged"), "{err}");
        let n: N = toml::from_str("nodes = [\"a\", \"b\"]").unwrap();
        assert!(matches!(n.nodes, NodeList::Names(ref v) if v.len() == 2));
    }
}
