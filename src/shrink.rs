//! Shrinking a failing scenario to a smaller one that still fails the same way (`faultline
//! shrink`; the user guide is `docs/shrinking.md`).
//!
//! 1. The run's fault schedule (the nemesis's draws and the scripted faults) is written out as
//!    scripted `[[fault]]` entries ([`crate::sim::export`]); the scripted scenario must still fail
//!    at the seed.
//! 2. The shortest prefix of the run that still fails (binary search on `duration`, dropping the
//!    faults that start after it); then delta debugging over the fault list ([`ddmin`]; Zeller & Hildebrandt, "Simplifying and
//!    Isolating Failure-Inducing Input", IEEE TSE 28(2), 2002), after one try with no faults.
//! 3. Greedy reductions, each kept if the candidate still fails ([`greedy`]): a shorter run
//!    (binary search down to the last fault's end), each fault shorter and earlier, fewer
//!    clients, less concurrency, fewer servers, a narrower latency range, no loss, duplication,
//!    reordering or link overrides. A candidate that no longer fails at the current seed is tried
//!    at the next `seed_tries` seeds (`seed + 1`, ...) and kept with the first that fails.
//!
//! Every candidate is a real run, judged by a [`Judge`]: [`RunJudge`] writes the candidate as
//! text, loads it back (a candidate that fails validation is rejected without a run) and runs it
//! with [`crate::outcome::run_seed`]. The search is deterministic for the same input and run
//! budget; a wall-time budget makes it depend on the machine's speed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::outcome::{Checked, run_seed};
use crate::scenario::topology::Topology;
use crate::scenario::{
    Duration, FaultSpec, LatencyDistribution, LatencySpec, NodeList, Scenario, Verdict,
};
use crate::sim::RunOptions;

/// What a candidate showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judged {
    /// It still fails the way being kept.
    Fails,
    /// It ran and did not fail that way.
    Passes,
    /// It is not a valid scenario (no run was spent).
    Rejected,
    /// The budget is spent (no run was made).
    OutOfBudget,
}

/// Judges candidates: the shrinker's only way to learn about a scenario.
pub trait Judge {
    /// Runs `candidate` at `seed` (or rejects it unrun).
    fn judge(&mut self, candidate: &Scenario, seed: u64) -> Judged;
    /// Runs made so far.
    fn runs(&self) -> u64;
    /// The most runs it will make.
    fn max_runs(&self) -> u64;
}

/// The budget of a search: runs (deterministic) and, optionally, wall time (not deterministic).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most runs.
    pub max_runs: u64,
    /// Most wall-clock seconds, if set.
    pub max_seconds: Option<f64>,
}

/// A judge that runs each candidate: the failure kept is "every one of `checks` fails".
pub struct RunJudge {
    /// The checks that must fail.
    pub checks: Vec<String>,
    /// Where the scenario came from (names it in validation errors).
    pub path: PathBuf,
    budget: Budget,
    started: std::time::Instant,
    runs: u64,
}

impl RunJudge {
    /// A judge keeping the failure of `checks`, within `budget` (the clock starts now).
    pub fn new(checks: Vec<String>, path: &Path, budget: Budget) -> RunJudge {
        RunJudge {
            checks,
            path: path.to_path_buf(),
            budget,
            started: crate::wall::wall_now(),
            runs: 0,
        }
    }

    /// True if every one of the judge's checks failed in `checked`.
    pub fn shows(&self, checked: &Checked) -> bool {
        checked.verdict() == Verdict::Fail
            && self.checks.iter().all(|name| {
                checked
                    .checks
                    .iter()
                    .any(|c| &c.name == name && c.verdict == Verdict::Fail)
            })
    }

    /// Runs `scenario` at `seed` outside the budget (the original run, the final confirmation).
    pub fn run_unbudgeted(&mut self, scenario: &Scenario, seed: u64) -> Option<Checked> {
        self.runs += 1;
        run_seed(scenario, seed, &RunOptions::hash_only()).ok()
    }

    /// `candidate` as it loads back from its text, or `None` if that text is not a valid
    /// scenario.
    pub fn reload(&self, candidate: &Scenario) -> Option<Scenario> {
        let text = candidate.to_toml_text().ok()?;
        Scenario::parse_with_families(&self.path, text.as_bytes(), candidate.families.clone()).ok()
    }
}

impl Judge for RunJudge {
    fn judge(&mut self, candidate: &Scenario, seed: u64) -> Judged {
        let Some(loaded) = self.reload(candidate) else {
            return Judged::Rejected;
        };
        let out_of_time = self
            .budget
            .max_seconds
            .is_some_and(|s| self.started.elapsed().as_secs_f64() >= s);
        if self.runs >= self.budget.max_runs || out_of_time {
            return Judged::OutOfBudget;
        }
        self.runs += 1;
        match run_seed(&loaded, seed, &RunOptions::hash_only()) {
            Ok(checked) if self.shows(&checked) => Judged::Fails,
            _ => Judged::Passes,
        }
    }

    fn runs(&self) -> u64 {
        self.runs
    }

    fn max_runs(&self) -> u64 {
        self.budget.max_runs
    }
}

/// Zeller's ddmin over the items `0..count`, all of which fail together: returns a subset
/// (ascending) that still fails, 1-minimal (removing any one item makes it pass) unless `test`
/// ran out of budget first. `test` is called on ascending subsets, never twice on the same one.
pub fn ddmin(count: usize, test: &mut dyn FnMut(&[usize]) -> Judged) -> Vec<usize> {
    let mut seen: BTreeMap<Vec<usize>, Judged> = BTreeMap::new();
    let mut fails = |subset: &[usize], out: &mut bool| -> bool {
        if *out {
            return false;
        }
        let judged = *seen.entry(subset.to_vec()).or_insert_with(|| test(subset));
        *out = judged == Judged::OutOfBudget;
        judged == Judged::Fails
    };
    let mut out_of_budget = false;
    let mut current: Vec<usize> = (0..count).collect();
    let mut n = 2usize;
    while current.len() >= 2 && !out_of_budget {
        let chunks = split(&current, n);
        let mut reduced = false;
        for chunk in &chunks {
            if fails(chunk, &mut out_of_budget) {
                current = chunk.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && n > 2 {
            for i in 0..chunks.len() {
                let complement: Vec<usize> = chunks
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .flat_map(|(_, c)| c.iter().copied())
                    .collect();
                if fails(&complement, &mut out_of_budget) {
                    current = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (2 * n).min(current.len());
        }
    }
    current
}

/// `items` in `n` contiguous chunks of nearly equal length.
fn split(items: &[usize], n: usize) -> Vec<Vec<usize>> {
    let n = n.min(items.len()).max(1);
    (0..n)
        .map(|i| items[i * items.len() / n..(i + 1) * items.len() / n].to_vec())
        .collect()
}

/// The sizes `faultline shrink` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Scripted faults (the nemesis's, if any, not counted: see [`crate::sim::export`]).
    pub faults: usize,
    /// Simulated length of the run.
    pub duration: Duration,
    /// Server nodes.
    pub nodes: usize,
    /// Client nodes.
    pub clients: usize,
}

impl Size {
    /// The sizes of `scenario`.
    pub fn of(scenario: &Scenario) -> Size {
        Size {
            faults: scenario.faults.len(),
            duration: scenario.duration,
            nodes: Topology::new(scenario).servers.len(),
            clients: scenario.clients.iter().map(|g| g.count as usize).sum(),
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} faults, duration {}, {} nodes, {} clients",
            self.faults, self.duration, self.nodes, self.clients
        )
    }
}

/// A scenario and the seed at which it fails.
#[derive(Clone, Debug)]
pub struct Failing {
    /// The scenario (scripted faults, no nemesis).
    pub scenario: Scenario,
    /// The seed it fails at.
    pub seed: u64,
}

/// Tells the caller about each accepted reduction: the step's name, the new failing scenario and
/// the runs made so far.
pub type OnAccept<'a> = dyn FnMut(&str, &Failing, u64) + 'a;

/// Steps 2 and 3: ddmin over `start`'s faults, then the greedy reductions, within the judge's
/// budget. `start` must fail at its seed.
pub fn shrink(
    start: Failing,
    judge: &mut dyn Judge,
    seed_tries: u64,
    on_accept: &mut OnAccept<'_>,
) -> Failing {
    let mut out = false;
    let prefix = shorter_run(&start, judge, 0, on_accept, &mut out, true).unwrap_or(start);
    let reduced = reduce_faults(prefix, judge, on_accept);
    greedy(reduced, judge, seed_tries, on_accept)
}

/// No faults at all, else ddmin over the fault list (at the current seed), with at most two
/// thirds of the runs left (the rest is for the greedy reductions).
pub fn reduce_faults(
    start: Failing,
    judge: &mut dyn Judge,
    on_accept: &mut OnAccept<'_>,
) -> Failing {
    let all = start.scenario.faults.clone();
    if all.is_empty() {
        return start;
    }
    let with = |subset: &[usize]| -> Scenario {
        let mut s = start.scenario.clone();
        s.faults = subset.iter().map(|&i| all[i].clone()).collect();
        s
    };
    let seed = start.seed;
    if judge.judge(&with(&[]), seed) == Judged::Fails {
        let best = Failing {
            scenario: with(&[]),
            seed,
        };
        on_accept("no faults", &best, judge.runs());
        return best;
    }
    let mut last_len = all.len();
    let cap = judge.runs() + judge.max_runs().saturating_sub(judge.runs()) * 2 / 3;
    let kept = ddmin(all.len(), &mut |subset| {
        if judge.runs() >= cap {
            return Judged::OutOfBudget;
        }
        let judged = judge.judge(&with(subset), seed);
        if judged == Judged::Fails && subset.len() < last_len {
            last_len = subset.len();
            on_accept(
                "ddmin",
                &Failing {
                    scenario: with(subset),
                    seed,
                },
                judge.runs(),
            );
        }
        judged
    });
    Failing {
        scenario: with(&kept),
        seed,
    }
}

/// A greedy pass: the candidates it makes of a scenario, most promising first.
type Pass = fn(&Scenario) -> Vec<Scenario>;

/// The greedy reductions, repeated until a whole round changes nothing or the budget is spent.
pub fn greedy(
    start: Failing,
    judge: &mut dyn Judge,
    seed_tries: u64,
    on_accept: &mut OnAccept<'_>,
) -> Failing {
    let mut best = start;
    let passes: [(&str, Pass); 6] = [
        ("fewer faults", fewer_faults),
        ("shorter faults", shorter_faults),
        ("fewer clients", fewer_clients),
        ("less concurrency", less_concurrency),
        ("fewer nodes", fewer_nodes),
        ("calmer network", calmer_network),
    ];
    loop {
        let mut changed = false;
        let mut out = false;
        if let Some(b) = shorter_run(&best, judge, seed_tries, on_accept, &mut out, false) {
            best = b;
            changed = true;
        }
        for (name, pass) in passes {
            'pass: loop {
                for candidate in pass(&best.scenario) {
                    match try_candidate(&candidate, best.seed, judge, seed_tries) {
                        Tried::Fails(seed) => {
                            best = Failing {
                                scenario: candidate,
                                seed,
                            };
                            on_accept(name, &best, judge.runs());
                            changed = true;
                            continue 'pass;
                        }
                        Tried::OutOfBudget => {
                            out = true;
                            break 'pass;
                        }
                        Tried::No => {}
                    }
                }
                break;
            }
        }
        if !changed || out {
            return best;
        }
    }
}

/// What trying a greedy candidate gave.
enum Tried {
    /// It fails at this seed.
    Fails(u64),
    /// It is invalid, or failed at none of the seeds tried.
    No,
    /// The budget ran out.
    OutOfBudget,
}

/// The seed at which `candidate` fails: `seed`, else the first of the next `seed_tries`.
fn try_candidate(candidate: &Scenario, seed: u64, judge: &mut dyn Judge, seed_tries: u64) -> Tried {
    for s in (0..=seed_tries).map(|k| seed.wrapping_add(k)) {
        match judge.judge(candidate, s) {
            Judged::Fails => return Tried::Fails(s),
            Judged::Rejected => return Tried::No,
            Judged::OutOfBudget => return Tried::OutOfBudget,
            Judged::Passes => {}
        }
    }
    Tried::No
}

const MS: u64 = 1_000_000;

/// `ns` rounded to whole milliseconds (at least one) when it is at least one.
fn round_ms(ns: u64) -> Duration {
    if ns >= MS {
        Duration((ns + MS / 2) / MS * MS)
    } else {
        Duration(ns)
    }
}

/// When the last fault ends (or starts, if it is never undone).
fn last_fault_end(s: &Scenario) -> u64 {
    s.faults
        .iter()
        .map(|f| f.at.as_nanos() + f.duration.map_or(0, Duration::as_nanos))
        .max()
        .unwrap_or(0)
}

/// Binary search for a shorter run, between the last fault's end and the current duration; with
/// `cut_faults`, between 1 ms and the current duration, dropping the faults that would start after
/// the end. (Up to the new end such a run is the same run, so a safety violation found early is
/// kept: this is the first step, before ddmin.)
fn shorter_run(
    best: &Failing,
    judge: &mut dyn Judge,
    seed_tries: u64,
    on_accept: &mut OnAccept<'_>,
    out: &mut bool,
    cut_faults: bool,
) -> Option<Failing> {
    let mut lo = if cut_faults {
        0
    } else {
        round_ms(last_fault_end(&best.scenario) + MS).as_nanos()
    };
    let mut hi = best.scenario.duration.as_nanos();
    let mut found: Option<Failing> = None;
    while hi > lo && hi - lo > (hi / 16).max(MS) {
        let mid = round_ms(lo + (hi - lo) / 2).as_nanos();
        let mut candidate = found.as_ref().unwrap_or(best).scenario.clone();
        candidate.duration = Duration(mid);
        if cut_faults {
            candidate.faults.retain(|f| f.at.as_nanos() < mid);
        }
        let seed = found.as_ref().unwrap_or(best).seed;
        match try_candidate(&candidate, seed, judge, seed_tries) {
            Tried::Fails(seed) => {
                let f = Failing {
                    scenario: candidate,
                    seed,
                };
                on_accept(
                    if cut_faults { "prefix" } else { "shorter run" },
                    &f,
                    judge.runs(),
                );
                found = Some(f);
                hi = mid;
            }
            Tried::OutOfBudget => {
                *out = true;
                break;
            }
            Tried::No => lo = mid,
        }
    }
    found
}

/// Without the first half of the faults, without the second half, then without each one (tried at
/// other seeds too, unlike ddmin's candidates).
fn fewer_faults(s: &Scenario) -> Vec<Scenario> {
    let n = s.faults.len();
    let mut out = Vec::new();
    if n >= 4 {
        for range in [0..n / 2, n / 2..n] {
            let mut c = s.clone();
            c.faults.drain(range);
            out.push(c);
        }
    }
    for i in 0..n {
        let mut c = s.clone();
        c.faults.remove(i);
        out.push(c);
    }
    out
}

/// For each fault: half as long, then starting half as early.
fn shorter_faults(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    for (i, f) in s.faults.iter().enumerate() {
        if let Some(d) = f.duration
            && d.as_nanos() >= 2 * MS
        {
            let mut c = s.clone();
            c.faults[i].duration = Some(round_ms(d.as_nanos() / 2));
            out.push(c);
        }
        if f.at.as_nanos() >= 2 * MS {
            let mut c = s.clone();
            c.faults[i].at = round_ms(f.at.as_nanos() / 2);
            out.push(c);
        }
    }
    out
}

/// Counts to try below `n`, smallest first: 0 (if allowed), half, one less.
fn smaller_counts(n: u32, least: u32) -> Vec<u32> {
    let mut v = vec![least, n / 2, n.saturating_sub(1)];
    v.retain(|&c| c >= least && c < n);
    v.sort_unstable();
    v.dedup();
    v
}

/// Each client group with fewer clients.
fn fewer_clients(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    for (i, g) in s.clients.iter().enumerate() {
        for count in smaller_counts(g.count, 0) {
            let mut c = s.clone();
            c.clients[i].count = count;
            out.push(c);
        }
    }
    out
}

/// Each client group with a lower `concurrency` option, where it has one.
fn less_concurrency(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    for (i, g) in s.clients.iter().enumerate() {
        let Some(n) = g
            .options
            .get("concurrency")
            .and_then(toml::Value::as_integer)
        else {
            continue;
        };
        for k in smaller_counts(u32::try_from(n).unwrap_or(1), 1) {
            let mut c = s.clone();
            c.clients[i]
                .options
                .insert("concurrency".into(), toml::Value::Integer(k.into()));
            out.push(c);
        }
    }
    out
}

/// Each role without its last node; faults that name that node alone are dropped, and the node
/// leaves partition sides and orders, named groups and the clocks. Whatever still refers to it
/// (protocol options, a partition left with one side) fails validation and is rejected unrun.
fn fewer_nodes(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    let topology = Topology::new(s);
    for (r, role) in s.cluster.roles.iter().enumerate() {
        let names: Vec<String> = topology
            .servers
            .iter()
            .filter(|id| topology.part[id.index()] == r)
            .map(|&id| topology.name(id).to_string())
            .collect();
        if names.len() < 2 {
            continue;
        }
        let gone = names.last().expect("two or more").clone();
        let mut c = s.clone();
        c.cluster.roles[r].nodes = match &role.nodes {
            NodeList::Count(n) => NodeList::Count(n - 1),
            NodeList::Names(list) => {
                NodeList::Names(list.iter().filter(|n| **n != gone).cloned().collect())
            }
        };
        c.faults.retain(|f| {
            ![&f.target, &f.from, &f.to]
                .iter()
                .any(|x| x.as_deref() == Some(gone.as_str()))
        });
        for f in &mut c.faults {
            without_node(f, &gone);
        }
        for members in c.cluster.groups.values_mut() {
            members.retain(|m| *m != gone);
        }
        c.cluster.groups.retain(|_, m| !m.is_empty());
        c.clock.remove(&gone);
        out.push(c);
    }
    out
}

/// `f` with node `gone` out of its partition sides and order (empty sides dropped).
fn without_node(f: &mut FaultSpec, gone: &str) {
    if let Some(groups) = &mut f.groups {
        for side in groups.iter_mut() {
            side.retain(|n| n != gone);
        }
        groups.retain(|side| !side.is_empty());
    }
    if let Some(order) = &mut f.order {
        order.retain(|n| n != gone);
    }
}

/// A narrower latency range, no loss, no duplication, no reordering, each link override gone.
fn calmer_network(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    let net = &s.network;
    if let LatencySpec::Distribution(LatencyDistribution::Uniform { min, max }) = &net.latency
        && max.as_nanos() > min.as_nanos() + MS
    {
        let mut c = s.clone();
        c.network.latency = LatencySpec::Distribution(LatencyDistribution::Uniform {
            min: *min,
            max: round_ms(min.as_nanos() + (max.as_nanos() - min.as_nanos()) / 2),
        });
        out.push(c);
    }
    if net.loss_probability > 0.0 {
        let mut c = s.clone();
        c.network.loss_probability = 0.0;
        out.push(c);
    }
    if net.duplicate_probability > 0.0 {
        let mut c = s.clone();
        c.network.duplicate_probability = 0.0;
        out.push(c);
    }
    if net.reorder {
        let mut c = s.clone();
        c.network.reorder = false;
        out.push(c);
    }
    for i in 0..net.links.len() {
        let mut c = s.clone();
        c.network.links.remove(i);
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddmin_finds_the_failure_inducing_pair_of_ten() {
        let mut calls = 0;
        let kept = ddmin(10, &mut |subset| {
            calls += 1;
            if subset.contains(&3) && subset.contains(&7) {
                Judged::Fails
            } else {
                Judged::Passes
            }
        });
        assert_eq!(kept, vec![3, 7]);
        assert!(calls < 60, "{calls} tests");
    }

    #[test]
    fn ddmin_result_is_one_minimal_for_a_three_item_cause() {
        let cause = [0, 5, 11];
        let kept = ddmin(16, &mut |subset| {
            if cause.iter().all(|c| subset.contains(c)) {
                Judged::Fails
            } else {
                Judged::Passes
            }
        });
        assert_eq!(kept, cause);
    }

    #[test]
    fn ddmin_stops_when_the_budget_is_spent() {
        let mut calls = 0;
        let kept = ddmin(64, &mut |_| {
            calls += 1;
            if calls > 3 {
                Judged::OutOfBudget
            } else {
                Judged::Passes
            }
        });
        assert_eq!(kept.len(), 64, "nothing removed without a failing test");
        assert_eq!(calls, 4);
    }

    /// Fails while some fault crashes `n2` and the run is at least 2 s long; counts runs.
    struct CrashOfN2 {
        runs: u64,
        max_runs: u64,
    }

    impl Judge for CrashOfN2 {
        fn judge(&mut self, s: &Scenario, _seed: u64) -> Judged {
            if self.runs >= self.max_runs {
                return Judged::OutOfBudget;
            }
            self.runs += 1;
            let crash = s.faults.iter().any(|f| {
                f.kind == crate::scenario::FaultKind::Crash && f.target.as_deref() == Some("n2")
            });
            if crash && s.duration.as_nanos() >= 2_000 * MS {
                Judged::Fails
            } else {
                Judged::Passes
            }
        }
        fn runs(&self) -> u64 {
            self.runs
        }
        fn max_runs(&self) -> u64 {
            self.max_runs
        }
    }

    #[test]
    fn shrink_keeps_the_one_fault_that_matters_and_shortens_the_run() {
        let mut text = String::from(
            "duration = \"60s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 5\n\
             [network]\nloss_probability = 0.1\n[workload]\nclients = 4\n",
        );
        for i in 0..20 {
            let node = 1 + i % 5;
            text += &format!(
                "[[fault]]\nat = \"{}s\"\nkind = \"crash\"\ntarget = \"n{node}\"\nduration = \"1s\"\n",
                1 + 2 * i
            );
        }
        let s = Scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap();
        let mut judge = CrashOfN2 {
            runs: 0,
            max_runs: 400,
        };
        let mut accepted = Vec::new();
        let out = shrink(
            Failing {
                scenario: s,
                seed: 1,
            },
            &mut judge,
            0,
            &mut |step, _, _| accepted.push(step.to_string()),
        );
        let size = Size::of(&out.scenario);
        assert_eq!(size.faults, 1, "{:?}", out.scenario.faults);
        assert_eq!(out.scenario.faults[0].target.as_deref(), Some("n2"));
        assert!(size.duration.as_nanos() < 3_000 * MS, "{size}");
        assert_eq!(size.clients, 0);
        assert_eq!(out.scenario.network.loss_probability, 0.0);
        assert!(accepted.contains(&"ddmin".to_string()), "{accepted:?}");
        assert!(judge.runs() < 400);
    }
}
