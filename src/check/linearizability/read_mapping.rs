//! Linearizability decided from the read mapping, without searching, where values are unique.
//!
//! When every value written to a cell (a register, or one key of the key-value store) is written
//! by one operation only and differs from the initial value, every value read names the
//! operation that wrote it: the *read mapping*. Gibbons & Korach ("Testing shared memories",
//! SIAM J. Comput. 26(4), 1997, §4, "VL with read-mapping") show that a register history with a
//! read mapping is checkable in polynomial time (O(n log n)), though checking without it is
//! NP-complete. Their characterisation, in the words of the *zones* of Golab, Li & Shah
//! ("Analyzing consistency properties for fun and profit", PODC 2011, §3, citing them): group
//! each write with the reads of its value (a *cluster*); a cluster's zone runs from the least
//! completion to the greatest invocation among its operations; it is *forward* when the least
//! completion comes first (the value must be in place over the whole zone) and *backward*
//! otherwise (the cluster fits at one instant). The history is linearizable iff no read precedes
//! its write, no two forward zones overlap and no backward zone lies inside a forward zone.
//!
//! This module extends the characterisation to the operations faultline's key-value clients use,
//! where an operation may read and write at once:
//!
//! - **Versions.** A cell's value is a *base* (the initial value, or the value of one put or of
//!   one successful cas) followed by the strings of the appends applied since, in order. With
//!   unique non-empty appended strings, a read's value decomposes (when it decomposes in exactly
//!   one way: [`Access::Read`] is built only then) into its base and its appends, so every read
//!   names a *version* (base, number of appends), and the appends of one base are totally
//!   ordered by the reads that show them (the order Elle infers from list-append reads:
//!   Kingsbury & Alvaro, "Elle", VLDB 2020, §4.2). Versions of one base are written in turn by
//!   the appends; a cas reads one version (its expected value) and writes a new base.
//! - **Chains.** An append or a cas *consumes* the version it extends or replaces: each version is
//!   consumed at most once (values are unique, so a consumed version never returns). Following
//!   consumers from a base written by a put (or from the initial value) gives a *chain*: a
//!   sequence of versions whose operations must be linearized in exactly this order: the writer of
//!   version 0, its readers, the consumer (writer of version 1), its readers, and so on. A put is
//!   a blind write, so it can only start a chain. A chain is thus a cluster whose operations are
//!   ordered; it occupies one stretch of the linearization, and other chains only come before or
//!   after it.
//! - **The conditions.** The history is linearizable iff (1) the reads and cas operations are
//!   consistent with one order per base (no two reads of one base disagree on its appends, no
//!   append or version is used twice), (2) each chain can be ordered as required within its
//!   operations' intervals (checked greedily in one pass: every operation must complete after the
//!   latest invocation of the operations it must follow), (3) the zones of chains (least
//!   completion, greatest invocation; the initial value's chain starts at a virtual write before
//!   everything) satisfy Gibbons & Korach's rule: no two forward zones overlap, no backward zone
//!   lies inside a forward zone, and (4) every `ok` append no read shows (an unobserved append)
//!   has an interval not inside a forward zone: it can only have taken effect after the last
//!   operation of some chain and before the next chain's put (an append in the middle of a chain
//!   would show in every later value of that chain).
//!   *Necessity*: a chain's first operation comes at or before its least completion and its
//!   last at or after its greatest invocation, so chains that cannot interleave need disjoint
//!   forward zones, and a chain whose zone lies inside another's forward zone would have to be
//!   linearized inside it. *Sufficiency*: given (2), clamping a chain's linearization points
//!   into its zone keeps their order (every operation's interval meets the zone, and event
//!   positions are distinct, so ties can be broken inside the intervals); forward chains then
//!   take their zones in turn, and every backward chain and every unobserved append takes a point
//!   of its interval outside all forward zones (the zones are disjoint closed intervals, so an
//!   interval inside none of them has such a point), an unobserved append right after a chain.
//! - **Operations of unknown outcome** (`info`, or never answered: pending to the end, Jepsen's
//!   semantics; [`super::ops`]). They may take effect at any instant after their invocation, or
//!   never, and unknown-outcome reads were already dropped. An unknown-outcome write whose value
//!   (or, for an append, whose string) some *certain* operation observes certainly took effect:
//!   values are unique, so nothing else could have produced what was observed. It then joins its
//!   chain with an interval open to the end of the history. A cas observes its expected value
//!   only if it took effect, so certainty spreads from the `ok` reads and `ok` cas operations
//!   along the cas operations whose new value is observed (a worklist, linear). Every other
//!   unknown-outcome write is dropped: it may never have taken effect, and dropping it is also
//!   complete, because in any linearization where it takes effect nothing observes it: the only
//!   operations between it and the next put are unobserved appends (anything else would observe
//!   its value), which stay unobserved on the previous value. This is Gibbons & Korach's remark
//!   (§4) that pending writes nobody reads may be discarded, applied to writes that also read.
//!
//! The decision takes O(n log n) per cell after decomposing the values read (linear in their
//! length). Where the mapping does not exist (a value written twice, a value equal to the
//! initial one, an empty append, a value read that decomposes in no way or in several, a cas
//! read as returning false) the model declines ([`super::Model::map_reads`] returns `None`) and
//! the search decides as before; where the order-consistency conditions (1) fail, the history is
//! certainly not linearizable.

use rustc_hash::FxHashMap;

/// A base id: `0` is the cell's initial value; any other number names one written value.
pub type BaseId = u32;
/// An appended string's id (the model's interned value).
pub type TokenId = u32;

/// One operation as the read mapping sees it. `cell` is the register, or the key-value store's
/// key number (cells are decided apart: linearizability is local, Herlihy & Wing 1990, §3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Constrains nothing (an unknown-outcome read).
    Skip,
    /// A read of the version `base` followed by `tokens`.
    Read {
        /// The cell.
        cell: u32,
        /// The version's base.
        base: BaseId,
        /// The appends after the base, in order.
        tokens: Box<[TokenId]>,
    },
    /// A blind write of a new base.
    Put {
        /// The cell.
        cell: u32,
        /// The base it writes.
        base: BaseId,
    },
    /// An append of a string.
    Append {
        /// The cell.
        cell: u32,
        /// The string.
        token: TokenId,
    },
    /// A compare-and-set that took effect (or may have): reads the version `base` + `tokens`,
    /// writes the base `to`.
    Cas {
        /// The cell.
        cell: u32,
        /// The expected version's base.
        base: BaseId,
        /// The expected version's appends.
        tokens: Box<[TokenId]>,
        /// The base it writes.
        to: BaseId,
    },
}

impl Access {
    fn cell(&self) -> Option<u32> {
        match self {
            Access::Skip => None,
            Access::Read { cell, .. }
            | Access::Put { cell, .. }
            | Access::Append { cell, .. }
            | Access::Cas { cell, .. } => Some(*cell),
        }
    }
}

/// What the read mapping decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Linearizable.
    Linearizable,
    /// Not linearizable: an operation (index) involved, and why, in one sentence.
    NotLinearizable(usize, String),
    /// The mapping does not decide (values not unique, ...): search.
    Undecided,
}

/// An operation's interval: positions of its invoke and completion events (`ret: None`: pending
/// to the end).
#[derive(Copy, Clone, Debug)]
pub struct Span {
    /// Invoke position.
    pub call: usize,
    /// Completion position, `None` if the outcome is unknown.
    pub ret: Option<usize>,
}

/// Positions shifted by one so the initial value's virtual write sits at 0, before everything.
fn call_of(s: Span) -> u64 {
    s.call as u64 + 1
}

fn ret_of(s: Span) -> u64 {
    s.ret.map_or(u64::MAX, |r| r as u64 + 1)
}

/// Decides the history `accesses` (one per operation, with `spans`), cell by cell; the first
/// failing cell (lowest cell number) is reported. `describe(i)` is operation `i` as text.
pub fn decide(accesses: &[Access], spans: &[Span], describe: &dyn Fn(usize) -> String) -> Decision {
    let mut cells: Vec<(u32, usize)> = accesses
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.cell().map(|c| (c, i)))
        .collect();
    cells.sort_unstable();
    let mut undecided = false;
    for group in cells.chunk_by(|a, b| a.0 == b.0) {
        let members: Vec<usize> = group.iter().map(|&(_, i)| i).collect();
        match decide_cell(accesses, spans, &members, describe) {
            Decision::Linearizable => {}
            Decision::Undecided => undecided = true,
            failed => return failed,
        }
    }
    if undecided {
        Decision::Undecided
    } else {
        Decision::Linearizable
    }
}

/// The operation writing a base: the initial value's virtual write, or an operation.
const VIRTUAL: usize = usize::MAX;

#[derive(Default)]
struct BaseInfo {
    /// The put or cas writing it (`VIRTUAL` for the initial value).
    writer: usize,
    /// Observed by a certain operation.
    observed: bool,
    /// The appends applied to it, in order (tokens).
    appends: Vec<TokenId>,
    /// The cas consuming its last version, if any.
    consumer: Option<usize>,
}

fn decide_cell(
    accesses: &[Access],
    spans: &[Span],
    members: &[usize],
    describe: &dyn Fn(usize) -> String,
) -> Decision {
    // Bases and tokens, each written by one operation.
    let mut bases: FxHashMap<BaseId, BaseInfo> = FxHashMap::default();
    bases.insert(
        0,
        BaseInfo {
            writer: VIRTUAL,
            observed: true,
            ..Default::default()
        },
    );
    let mut token_writer: FxHashMap<TokenId, usize> = FxHashMap::default();
    for &i in members {
        match &accesses[i] {
            Access::Put { base, .. } | Access::Cas { to: base, .. } => {
                if *base == 0 || bases.contains_key(base) {
                    return Decision::Undecided;
                }
                bases.insert(
                    *base,
                    BaseInfo {
                        writer: i,
                        ..Default::default()
                    },
                );
            }
            Access::Append { token, .. } => {
                if token_writer.insert(*token, i).is_some() {
                    return Decision::Undecided;
                }
            }
            Access::Read { .. } | Access::Skip => {}
        }
    }
    // Certain operations: answered ones, and unknown-outcome ones whose value a certain one
    // observes. A cas observes its expected version only if it is certain.
    let mut certain: FxHashMap<usize, ()> = FxHashMap::default();
    let mut token_seen: FxHashMap<TokenId, ()> = FxHashMap::default();
    let mut work: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| spans[i].ret.is_some())
        .collect();
    // Observations (base, tokens) of certain operations, in the order found.
    let mut observations: Vec<usize> = Vec::new();
    while let Some(i) = work.pop() {
        if certain.insert(i, ()).is_some() {
            continue;
        }
        let (base, tokens) = match &accesses[i] {
            Access::Read { base, tokens, .. } | Access::Cas { base, tokens, .. } => (*base, tokens),
            _ => continue,
        };
        observations.push(i);
        let Some(info) = bases.get_mut(&base) else {
            // A read of a base nothing writes: the model only maps values it can produce.
            return Decision::Undecided;
        };
        if !info.observed {
            info.observed = true;
            if info.writer != VIRTUAL && spans[info.writer].ret.is_none() {
                work.push(info.writer);
            }
        }
        for t in tokens.iter() {
            let Some(&w) = token_writer.get(t) else {
                return Decision::Undecided;
            };
            if token_seen.insert(*t, ()).is_none() && spans[w].ret.is_none() {
                work.push(w);
            }
        }
    }
    // In history order, so that the operation blamed for a conflict is deterministic.
    observations.sort_unstable();
    // (1) One order of appends per base; each token at one place; each version consumed once.
    let mut token_place: FxHashMap<TokenId, (BaseId, usize)> = FxHashMap::default();
    for &i in &observations {
        let (base, tokens) = match &accesses[i] {
            Access::Read { base, tokens, .. } | Access::Cas { base, tokens, .. } => (*base, tokens),
            _ => unreachable!("observations are reads and cas operations"),
        };
        let info = bases.get_mut(&base).expect("checked above");
        let known = info.appends.len().min(tokens.len());
        if info.appends[..known] != tokens[..known] {
            return Decision::NotLinearizable(
                i,
                format!(
                    "{} shows the appends to its base in an order that another operation's value contradicts",
                    describe(i)
                ),
            );
        }
        for (k, &t) in tokens.iter().enumerate().skip(info.appends.len()) {
            if let Some(&(b, at)) = token_place.get(&t)
                && (b, at) != (base, k)
            {
                return Decision::NotLinearizable(
                    i,
                    format!(
                        "{} shows {} in a place another operation's value contradicts (each append takes effect once)",
                        describe(i),
                        describe(token_writer[&t])
                    ),
                );
            }
            token_place.insert(t, (base, k));
            info.appends.push(t);
        }
    }
    for &i in &observations {
        if let Access::Cas { base, tokens, .. } = &accesses[i] {
            let info = bases.get_mut(base).expect("checked above");
            if tokens.len() != info.appends.len() || info.consumer.is_some() {
                return Decision::NotLinearizable(
                    i,
                    format!(
                        "{} replaced a value that was later extended or replaced again (values are unique, so it never came back)",
                        describe(i)
                    ),
                );
            }
            info.consumer = Some(i);
        }
    }
    // (2) Chains, from the initial value and from each certain put.
    struct Zone {
        first_ret: u64,
        last_call: u64,
        op: usize,
    }
    let mut zones: Vec<Zone> = Vec::new();
    let mut visited = 0usize;
    let mut roots: Vec<(usize, BaseId)> = vec![(VIRTUAL, 0)];
    for &i in members {
        if let Access::Put { base, .. } = &accesses[i]
            && (spans[i].ret.is_some() || certain.contains_key(&i))
        {
            roots.push((i, *base));
        }
    }
    // Readers per version: (base, appends before) -> readers, in history order.
    let mut readers: FxHashMap<(BaseId, usize), Vec<usize>> = FxHashMap::default();
    for &i in &observations {
        if let Access::Read { base, tokens, .. } = &accesses[i] {
            readers.entry((*base, tokens.len())).or_default().push(i);
        }
    }
    let span = |op: usize| -> (u64, u64) {
        if op == VIRTUAL {
            (0, 0)
        } else {
            (call_of(spans[op]), ret_of(spans[op]))
        }
    };
    for (root_op, root) in roots {
        let mut base = root;
        let mut writer = root_op;
        // The latest invocation among the operations placed so far, and which one.
        let mut latest: (u64, usize) = (0, VIRTUAL);
        // The initial value's chain is named by its first real operation.
        let mut zone = Zone {
            first_ret: u64::MAX,
            last_call: 0,
            op: root_op,
        };
        let place = |op: usize, latest: (u64, usize), zone: &mut Zone| {
            let (call, ret) = span(op);
            if op != VIRTUAL && ret <= latest.0 {
                return Err(Decision::NotLinearizable(
                    op,
                    format!(
                        "{} completed before {} was invoked, but the values read put it after",
                        describe(op),
                        if latest.1 == VIRTUAL {
                            "the history began".to_string()
                        } else {
                            describe(latest.1)
                        }
                    ),
                ));
            }
            if zone.op == VIRTUAL {
                zone.op = op;
            }
            zone.first_ret = zone.first_ret.min(ret);
            zone.last_call = zone.last_call.max(call);
            Ok(())
        };
        loop {
            visited += 1;
            let info = &bases[&base];
            for k in 0..=info.appends.len() {
                let w = if k == 0 {
                    writer
                } else {
                    token_writer[&info.appends[k - 1]]
                };
                if let Err(d) = place(w, latest, &mut zone) {
                    return d;
                }
                let (call, _) = span(w);
                if call >= latest.0 {
                    latest = (call, w);
                }
                if let Some(rs) = readers.get(&(base, k)) {
                    let mut most = latest;
                    for &r in rs {
                        if let Err(d) = place(r, latest, &mut zone) {
                            return d;
                        }
                        let (call, _) = span(r);
                        if call >= most.0 {
                            most = (call, r);
                        }
                    }
                    latest = most;
                }
            }
            match info.consumer {
                Some(cas) => {
                    let Access::Cas { to, .. } = &accesses[cas] else {
                        unreachable!("consumers are cas operations")
                    };
                    writer = cas;
                    base = *to;
                }
                None => break,
            }
        }
        zones.push(zone);
    }
    let certain_bases = bases
        .iter()
        .filter(|(b, info)| {
            **b == 0 || spans[info.writer].ret.is_some() || certain.contains_key(&info.writer)
        })
        .count();
    if visited != certain_bases {
        // A cycle of cas operations, each replacing the value the next one writes.
        let op = bases
            .iter()
            .filter(|(b, i)| **b != 0 && i.consumer.is_some())
            .map(|(_, i)| i.writer)
            .min()
            .unwrap_or(0);
        return Decision::NotLinearizable(
            op,
            format!(
                "{} is part of a cycle of compare-and-set operations, each expecting a value another one writes",
                describe(op)
            ),
        );
    }
    // (3) Zones.
    let (mut forward, backward): (Vec<Zone>, Vec<Zone>) =
        zones.into_iter().partition(|z| z.first_ret < z.last_call);
    forward.sort_unstable_by_key(|z| z.first_ret);
    for pair in forward.windows(2) {
        if pair[1].first_ret <= pair[0].last_call {
            return Decision::NotLinearizable(
                pair[1].op,
                format!(
                    "the values from {} on must hold from one operation's completion to another's invocation, and so must those from {}: the stretches overlap",
                    describe(pair[0].op),
                    describe(pair[1].op)
                ),
            );
        }
    }
    let inside = |from: u64, to: u64| -> Option<&Zone> {
        let at = forward.partition_point(|z| z.first_ret < from);
        at.checked_sub(1)
            .map(|k| &forward[k])
            .filter(|z| to < z.last_call)
    };
    for z in &backward {
        if let Some(f) = inside(z.last_call, z.first_ret) {
            return Decision::NotLinearizable(
                z.op,
                format!(
                    "{} must take effect while the values from {} must hold",
                    describe(z.op),
                    describe(f.op)
                ),
            );
        }
    }
    // (4) Unobserved ok appends.
    for &i in members {
        if let Access::Append { token, .. } = &accesses[i]
            && spans[i].ret.is_some()
            && !token_seen.contains_key(token)
        {
            let (call, ret) = span(i);
            if let Some(f) = inside(call, ret) {
                return Decision::NotLinearizable(
                    i,
                    format!(
                        "{} took effect while the values from {} must hold, yet no value read shows it",
                        describe(i),
                        describe(f.op)
                    ),
                );
            }
        }
    }
    Decision::Linearizable
}
