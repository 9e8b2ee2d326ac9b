//! A failure's signature: which checks did not pass, and the shape of the first one's first piece
//! of evidence. Seeds with equal signatures are taken to show the same bug: `faultline sweep`
//! groups its failing seeds by signature, and `faultline shrink` keeps a failure's signature (or
//! its failing checks) while it makes the scenario smaller.
//!
//! The evidence *kind* is the first evidence line with its particulars masked: every word that
//! holds a digit or a quote (a time, a node, a term, a value) becomes `_`, and runs of masked
//! words become one. `two leaders in term 101: n4 became leader at 10087.4ms and n2 at 10095.5ms`
//! has the kind `two leaders in term _ became leader at _ and _ at _`. Model: crash bucketing by a
//! normalised stack (Mozilla Socorro's signatures), here over the checker's own sentence.

use serde::{Deserialize, Serialize};

use crate::family::CheckResult;
use crate::scenario::Verdict;

/// Most characters kept of an evidence kind.
pub const MAX_EVIDENCE_KIND_CHARS: usize = 120;

/// The signature of a run that did not pass.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Signature {
    /// The run's verdict (`fail` or `unknown`).
    pub verdict: Verdict,
    /// The checks that failed (for a `fail`) or could not decide (for an `unknown`), in the
    /// order the run reported them.
    pub checks: Vec<String>,
    /// The kind of the first of those checks' first evidence line (see the module docs); empty
    /// if it cited none.
    pub evidence_kind: String,
}

impl Signature {
    /// The signature of a run's check results, or `None` if every check passed.
    pub fn of(results: &[CheckResult]) -> Option<Signature> {
        let verdict = crate::check::overall(results);
        if verdict == Verdict::Pass {
            return None;
        }
        let matching: Vec<&CheckResult> = results.iter().filter(|c| c.verdict == verdict).collect();
        let evidence_kind = matching
            .first()
            .and_then(|c| c.evidence.first())
            .map_or_else(String::new, |e| evidence_kind(e));
        Some(Signature {
            verdict,
            checks: matching.iter().map(|c| c.name.clone()).collect(),
            evidence_kind,
        })
    }

    /// One line for people: `fail: election-safety (two leaders in term _ ...)`.
    pub fn describe(&self) -> String {
        let verdict = self.verdict.word();
        if self.evidence_kind.is_empty() {
            format!("{verdict}: {}", self.checks.join(", "))
        } else {
            format!(
                "{verdict}: {} ({})",
                self.checks.join(", "),
                self.evidence_kind
            )
        }
    }
}

/// The kind of one evidence line: its words, with each word holding a digit or a quote replaced
/// by `_` (runs of them by one `_`), at most [`MAX_EVIDENCE_KIND_CHARS`] characters.
pub fn evidence_kind(evidence: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    for word in evidence.split_whitespace() {
        let word = word.trim_end_matches([',', ';', ':', '.']);
        let masked = word
            .chars()
            .any(|c| c.is_ascii_digit() || c == '"' || c == '\'');
        let word = if masked { "_" } else { word };
        if word.is_empty() || (word == "_" && words.last() == Some(&"_")) {
            continue;
        }
        words.push(word);
    }
    let mut kind = words.join(" ");
    if kind.len() > MAX_EVIDENCE_KIND_CHARS {
        let mut end = MAX_EVIDENCE_KIND_CHARS;
        while !kind.is_char_boundary(end) {
            end -= 1;
        }
        kind.truncate(end);
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, verdict: Verdict, evidence: &[&str]) -> CheckResult {
        let mut r = CheckResult::new(name, verdict, "");
        r.evidence = evidence.iter().map(|e| e.to_string()).collect();
        r
    }

    #[test]
    fn an_evidence_kind_masks_times_nodes_and_values_but_keeps_the_sentence() {
        assert_eq!(
            evidence_kind(
                "two leaders in term 101: n4 became leader at 10087.4ms and n2 at 10095.5ms"
            ),
            "two leaders in term _ became leader at _ and _ at _"
        );
        assert_eq!(
            evidence_kind("two leaders in term 7: n1 became leader at 5.0ms and n3 at 9.1ms"),
            evidence_kind("two leaders in term 101: n4 became leader at 10087.4ms and n2 at 1ms"),
            "the same bug at other times and nodes has the same kind"
        );
        assert_ne!(
            evidence_kind("stale read c4 get k1 \"c4-79\" [4021.0ms, 4027.7ms] ok"),
            evidence_kind("two leaders in term 7: n1 became leader at 5.0ms")
        );
        assert_eq!(evidence_kind(""), "");
        let long = "word ".repeat(100);
        assert!(evidence_kind(&long).len() <= MAX_EVIDENCE_KIND_CHARS);
        let wide = "é".repeat(100);
        assert!(evidence_kind(&wide).len() <= MAX_EVIDENCE_KIND_CHARS);
    }

    #[test]
    fn a_signature_names_the_checks_of_the_verdict_and_the_first_ones_evidence() {
        let results = [
            result("liveness", Verdict::Unknown, &["nothing invoked"]),
            result(
                "election-safety",
                Verdict::Fail,
                &["two leaders in term 3: n1"],
            ),
            result("log-matching", Verdict::Pass, &[]),
            result("linearizability", Verdict::Fail, &["longest prefix 3"]),
        ];
        let s = Signature::of(&results).expect("a failing run has a signature");
        assert_eq!(s.verdict, Verdict::Fail);
        assert_eq!(s.checks, ["election-safety", "linearizability"]);
        assert_eq!(s.evidence_kind, "two leaders in term _");
        assert_eq!(
            s.describe(),
            "fail: election-safety, linearizability (two leaders in term _)"
        );
        let unknown = Signature::of(&results[..1]).unwrap();
        assert_eq!(
            (unknown.verdict, unknown.checks.len()),
            (Verdict::Unknown, 1)
        );
        assert_eq!(
            Signature::of(&results[2..3]),
            None,
            "a passing run has none"
        );
    }
}
