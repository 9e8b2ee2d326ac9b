//! Tests of the search, the models and the counterexample text.

use proptest::prelude::*;

use super::*;
use crate::history::{EventType, Function, HistoryEvent, Value};

fn ev(p: u64, kind: EventType, f: Function, key: Option<&str>, v: Value) -> HistoryEvent {
    HistoryEvent::new(p, kind, f, key.map(str::to_string), v)
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn pair_v(a: Value, b: Value) -> Value {
    Value::List(vec![a, b])
}

fn verdict(events: &[HistoryEvent], model: ModelKind) -> Verdict {
    check_events(events, &Options::new(model)).unwrap().verdict
}

// ---------------------------------------------------------------------------------------------
// Brute force: the definition (Herlihy & Wing §2), by trying every order.

fn brute<M: Model>(mut model: M, raw: &[RawOp<'_>]) -> bool {
    let ops: Vec<Operation<M::Input, M::Output>> = raw
        .iter()
        .map(|r| Operation::convert(&mut model, r).unwrap())
        .collect();
    fn dfs<M: Model>(
        model: &mut M,
        ops: &[Operation<M::Input, M::Output>],
        used: &mut Vec<bool>,
        state: &M::State,
    ) -> bool {
        if ops
            .iter()
            .zip(used.iter())
            .all(|(o, u)| *u || o.ret.is_none())
        {
            return true;
        }
        for i in 0..ops.len() {
            if used[i] {
                continue;
            }
            // i may come next only if every operation that completed before i's invoke is
            // already placed (real-time order).
            let blocked =
                (0..ops.len()).any(|j| !used[j] && ops[j].ret.is_some_and(|r| r < ops[i].call));
            if blocked {
                continue;
            }
            if let Some(next) = model.step(state, &ops[i].input, ops[i].output.as_ref()) {
                used[i] = true;
                if dfs(model, ops, used, &next) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    let init = model.init();
    let mut used = vec![false; ops.len()];
    dfs(&mut model, &ops, &mut used, &init)
}

/// A random history: `clients` sequential clients, `ops` operations in total, drawn by `pick`
/// (function, key, invoke value, ok value), with random interleaving and ok/info/fail outcomes.
fn random_history(
    choices: &[(u8, u8, u8, u8, u8)],
    clients: usize,
    make: &dyn Fn(u8, u8, u8) -> (Function, Option<String>, Value, Value),
) -> Vec<HistoryEvent> {
    let mut events = Vec::new();
    type Pending = (u64, Function, Option<String>, Value, Value, u8);
    let mut busy: Vec<Option<Pending>> = vec![None; clients];
    let mut process: Vec<u64> = (0..clients as u64).collect();
    let mut next_process = clients as u64;
    let mut started = 0;
    for &(who, a, b, c, outcome) in choices {
        let client = who as usize % clients;
        match busy[client].take() {
            None => {
                let (f, key, inv, okv) = make(a, b, c);
                events.push(ev(
                    process[client],
                    EventType::Invoke,
                    f,
                    key.as_deref(),
                    inv.clone(),
                ));
                busy[client] = Some((process[client], f, key, inv, okv, outcome));
                started += 1;
            }
            Some((p, f, key, inv, okv, outcome)) => {
                let kind = match outcome % 10 {
                    0 | 1 => EventType::Info,
                    2 => EventType::Fail,
                    _ => EventType::Ok,
                };
                let value = if kind == EventType::Ok { okv } else { inv };
                events.push(ev(p, kind, f, key.as_deref(), value));
                if kind == EventType::Info {
                    process[client] = next_process;
                    next_process += 1;
                }
            }
        }
        let _ = started;
    }
    events
}

fn register_op(a: u8, b: u8, c: u8) -> (Function, Option<String>, Value, Value) {
    let v = |x: u8| int((x % 3) as i64);
    match a % 3 {
        0 => (
            Function::Read,
            None,
            Value::Nil,
            if c % 4 == 3 { Value::Nil } else { v(c) },
        ),
        1 => (Function::Write, None, v(b), v(b)),
        _ => (Function::Cas, None, pair_v(v(b), v(c)), pair_v(v(b), v(c))),
    }
}

fn kv_op(a: u8, b: u8, c: u8) -> (Function, Option<String>, Value, Value) {
    let key = Some(if b.is_multiple_of(2) { "x" } else { "y" }.to_string());
    let s = |x: u8| Value::Str(["a", "b", "ab"][(x % 3) as usize].to_string());
    match a % 4 {
        0 => (
            Function::Get,
            key,
            Value::Nil,
            if c % 4 == 3 { Value::Nil } else { s(c) },
        ),
        1 => (Function::Put, key, s(c), s(c)),
        2 => (Function::Append, key, s(c % 2), s(c % 2)),
        _ => (Function::Cas, key, pair_v(s(c), s(b)), pair_v(s(c), s(b))),
    }
}

/// Operations whose writes always write a fresh value, as faultline's clients do; reads return
/// the initial value or one written earlier (exercises the rules that rely on unique values).
fn unique_register_op(
    written: &std::cell::Cell<u8>,
) -> impl Fn(u8, u8, u8) -> (Function, Option<String>, Value, Value) + '_ {
    move |a, b, c| {
        let n = written.get();
        let old = |x: u8| {
            if n == 0 || x.is_multiple_of(n + 1) {
                Value::Nil
            } else {
                int((x % (n + 1)) as i64)
            }
        };
        match a % 3 {
            0 => (Function::Read, None, Value::Nil, old(c)),
            1 => {
                written.set(n + 1);
                (Function::Write, None, int(n as i64 + 1), int(n as i64 + 1))
            }
            _ => {
                written.set(n + 1);
                let cas = pair_v(old(b), int(n as i64 + 1));
                (Function::Cas, None, cas.clone(), cas)
            }
        }
    }
}

fn unique_kv_op(
    written: &std::cell::Cell<u8>,
) -> impl Fn(u8, u8, u8) -> (Function, Option<String>, Value, Value) + '_ {
    move |a, b, c| {
        let key = Some(if b % 2 == 0 { "x" } else { "y" }.to_string());
        let n = written.get();
        let s = |i: u8| Value::Str(format!("v{i}"));
        let old = |x: u8| {
            if n == 0 || x.is_multiple_of(n + 1) {
                Value::Nil
            } else {
                s(x % (n + 1))
            }
        };
        match a % 3 {
            0 => (Function::Get, key, Value::Nil, old(c)),
            1 => {
                written.set(n + 1);
                (Function::Put, key, s(n + 1), s(n + 1))
            }
            _ => {
                written.set(n + 1);
                let cas = pair_v(old(c), s(n + 1));
                (Function::Cas, key, cas.clone(), cas)
            }
        }
    }
}

fn mutex_op(a: u8, _b: u8, _c: u8) -> (Function, Option<String>, Value, Value) {
    if a.is_multiple_of(2) {
        (Function::Acquire, None, Value::Nil, Value::Nil)
    } else {
        (Function::Release, None, Value::Nil, Value::Nil)
    }
}

/// A history of appends (and now and then a put or a cas) to one key, from `clients` clients,
/// that a real store could have produced: every operation takes effect at one instant between
/// its invoke and its completion (`info` ones may not take effect at all), and every read
/// returns the value at its instant. With `corrupt`, the value of one read is then rotated or
/// cut short, which makes most such histories not linearizable.
fn append_history(
    choices: &[(u8, u8, u8, u8, u8)],
    clients: usize,
    corrupt: Option<u8>,
) -> Vec<HistoryEvent> {
    #[derive(Clone)]
    enum Phase {
        Idle,
        Invoked(Function, Value),
        Applied(Function, Value, Value),
    }
    let mut events = Vec::new();
    let mut phase = vec![Phase::Idle; clients];
    let mut process: Vec<u64> = (0..clients as u64).collect();
    let mut next_process = clients as u64;
    let mut state = String::new();
    let mut absent = true;
    let mut fresh = 0;
    let mut reads = Vec::new();
    for &(who, a, b, _, outcome) in choices {
        let c = who as usize % clients;
        let p = process[c];
        let k = Some("k");
        phase[c] = match std::mem::replace(&mut phase[c], Phase::Idle) {
            Phase::Idle => {
                fresh += 1;
                let (f, v) = match a % 8 {
                    0..=2 => (Function::Get, Value::Nil),
                    3..=5 => (Function::Append, Value::Str(format!("t{fresh};"))),
                    6 => (Function::Put, Value::Str(format!("p{fresh};"))),
                    _ => {
                        let from = if b % 2 == 0 {
                            state.clone()
                        } else {
                            "t1;".into()
                        };
                        let to = format!("c{fresh};");
                        (Function::Cas, pair_v(Value::Str(from), Value::Str(to)))
                    }
                };
                events.push(ev(p, Invoke, f, k, v.clone()));
                Phase::Invoked(f, v)
            }
            Phase::Invoked(f, v) => {
                let result = match (f, &v) {
                    (Function::Get, _) if absent => Value::Nil,
                    (Function::Get, _) => Value::Str(state.clone()),
                    (Function::Append, Value::Str(t)) => {
                        state.push_str(t);
                        absent = false;
                        v.clone()
                    }
                    (Function::Put, Value::Str(t)) => {
                        state = t.clone();
                        absent = false;
                        v.clone()
                    }
                    (Function::Cas, Value::List(l)) => match (&l[0], &l[1]) {
                        (Value::Str(from), Value::Str(to)) if !absent && *from == state => {
                            state = to.clone();
                            v.clone()
                        }
                        // The cas did not take effect: it fails.
                        _ => Value::Bool(false),
                    },
                    _ => unreachable!("generated above"),
                };
                Phase::Applied(f, v, result)
            }
            Phase::Applied(f, v, result) => {
                let (kind, value) = match (outcome % 10, &result) {
                    (_, Value::Bool(false)) => (Fail, v),
                    (0, _) => (Info, v),
                    _ => (Done, result),
                };
                if kind == Done && f == Function::Get {
                    reads.push(events.len());
                }
                events.push(ev(p, kind, f, k, value));
                if kind == Info {
                    process[c] = next_process;
                    next_process += 1;
                }
                Phase::Idle
            }
        };
    }
    // An operation invoked but not applied yet ends unanswered (it may take effect later, or
    // never); one applied but not completed likewise.
    if let (Some(x), false) = (corrupt, reads.is_empty()) {
        let e = &mut events[reads[x as usize % reads.len()]];
        if let Value::Str(t) = e.value.clone() {
            let cut = (x as usize / 7) % (t.len() + 1);
            e.value = if x % 3 == 0 {
                Value::Str(t[..t.len() / 2].to_string())
            } else {
                Value::Str(format!("{}{}", &t[cut..], &t[..cut]))
            };
        }
    }
    events
}

/// The verdict of `h` (key-value) with and without pruning by later reads.
fn pruned_and_plain(h: &[HistoryEvent]) -> (Verdict, Verdict) {
    let mut o = Options::new(ModelKind::KeyValue);
    let pruned = check_events(h, &o).unwrap().verdict;
    o.prune_by_later_reads = false;
    (pruned, check_events(h, &o).unwrap().verdict)
}

fn choices() -> impl Strategy<Value = Vec<(u8, u8, u8, u8, u8)>> {
    proptest::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 0..17)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn cas_register_search_agrees_with_brute_force(c in choices(), clients in 2usize..5) {
        let h = random_history(&c, clients, &register_op);
        let raw = ops::pair(&h).unwrap();
        let expected = brute(models::Register::new(&Value::Nil, true), &raw);
        let got = verdict(&h, ModelKind::CasRegister);
        prop_assert_eq!(got == Verdict::Linearizable, expected, "{:?}", h);
        prop_assert!(got != Verdict::Unknown);
    }

    #[test]
    fn porcupine_reading_of_failed_cas_agrees_with_brute_force(c in choices(), clients in 2usize..5) {
        let h = random_history(&c, clients, &register_op);
        let raw = ops::pair_with(&h, true).unwrap();
        let expected = brute(models::Register::new(&Value::Nil, true), &raw);
        let mut o = Options::new(ModelKind::CasRegister);
        o.failed_cas_returns_false = true;
        let got = check_events(&h, &o).unwrap().verdict;
        prop_assert_eq!(got == Verdict::Linearizable, expected, "{:?}", h);
    }

    #[test]
    fn key_value_search_agrees_with_brute_force(c in choices(), clients in 2usize..5) {
        let h = random_history(&c, clients, &kv_op);
        let raw = ops::pair(&h).unwrap();
        let expected = brute(models::KeyValue::new(&Value::Nil, false), &raw);
        let partitioned = verdict(&h, ModelKind::KeyValue);
        let mut whole = Options::new(ModelKind::KeyValue);
        whole.partition = false;
        let unpartitioned = check_events(&h, &whole).unwrap().verdict;
        prop_assert_eq!(partitioned == Verdict::Linearizable, expected, "{:?}", h);
        prop_assert_eq!(unpartitioned, partitioned);
    }

    #[test]
    fn unique_value_register_search_agrees_with_brute_force(c in choices(), clients in 2usize..5) {
        let written = std::cell::Cell::new(0);
        let h = random_history(&c, clients, &unique_register_op(&written));
        let raw = ops::pair(&h).unwrap();
        let expected = brute(models::Register::new(&Value::Nil, true), &raw);
        let got = verdict(&h, ModelKind::CasRegister);
        prop_assert_eq!(got == Verdict::Linearizable, expected, "{:?}", h);
    }

    #[test]
    fn unique_value_key_value_search_agrees_with_brute_force(c in choices(), clients in 2usize..5) {
        let written = std::cell::Cell::new(0);
        let h = random_history(&c, clients, &unique_kv_op(&written));
        let raw = ops::pair(&h).unwrap();
        let expected = brute(models::KeyValue::new(&Value::Nil, false), &raw);
        prop_assert_eq!(verdict(&h, ModelKind::KeyValue) == Verdict::Linearizable, expected, "{:?}", h);
    }

    #[test]
    fn pruning_by_later_reads_agrees_with_brute_force_on_small_append_histories(
        c in proptest::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 0..25),
        clients in 2usize..5,
        corrupt in proptest::option::of(any::<u8>()),
    ) {
        let h = append_history(&c, clients, corrupt);
        let raw = ops::pair(&h).unwrap();
        let expected = brute(models::KeyValue::new(&Value::Nil, false), &raw);
        let (pruned, plain) = pruned_and_plain(&h);
        prop_assert_eq!(pruned == Verdict::Linearizable, expected, "{:?}", h);
        prop_assert_eq!(pruned, plain, "{:?}", h);
        if corrupt.is_none() {
            prop_assert_eq!(pruned, Verdict::Linearizable, "{:?}", h);
        }
    }

    #[test]
    fn mutex_search_agrees_with_brute_force(c in choices(), clients in 2usize..5) {
        let h = random_history(&c, clients, &mutex_op);
        let raw = ops::pair(&h).unwrap();
        let expected = brute(models::Mutex, &raw);
        prop_assert_eq!(verdict(&h, ModelKind::Mutex) == Verdict::Linearizable, expected, "{:?}", h);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pruning_by_later_reads_keeps_verdicts_on_larger_append_histories(
        c in proptest::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 40..90),
        clients in 2usize..6,
        corrupt in proptest::option::of(any::<u8>()),
    ) {
        let h = append_history(&c, clients, corrupt);
        let (pruned, plain) = pruned_and_plain(&h);
        prop_assert_eq!(pruned, plain, "{:?}", h);
        if corrupt.is_none() {
            prop_assert_eq!(pruned, Verdict::Linearizable, "{:?}", h);
        }
    }

    /// A compact history hands its value ids to the key-value model (nothing interned again):
    /// the report, counterexample included, is the one of the same events interned by the model.
    #[test]
    fn a_compact_history_checks_with_its_own_value_ids_like_its_events(
        c in proptest::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 0..60),
        clients in 2usize..5,
        corrupt in proptest::option::of(any::<u8>()),
        shape in 0u8..3,
    ) {
        let written = std::cell::Cell::new(0);
        let h = match shape {
            0 => append_history(&c, clients, corrupt),
            1 => random_history(&c, clients, &kv_op),
            _ => random_history(&c, clients, &unique_kv_op(&written)),
        };
        let compact = crate::history::CompactHistory::from(crate::history::ImportedHistory {
            events: h.clone(),
            lines: (1..=h.len() as u32).collect(),
        });
        prop_assert!(compact.interner().is_some());
        for (partition, initial) in [(true, None), (false, None), (true, Some(Value::Str("".into())))] {
            let mut o = Options::new(ModelKind::KeyValue);
            o.partition = partition;
            o.initial = initial;
            prop_assert_eq!(check_events(&compact, &o), check_events(&h, &o), "{:?}", h);
        }
    }
}

#[test]
fn paired_operations_carry_the_ids_of_their_values_in_a_compact_history() {
    let h = vec![
        ev(0, Invoke, Function::Put, Some("k"), Value::Str("a".into())),
        ev(1, Invoke, Function::Get, Some("k"), Value::Nil),
        ev(0, Done, Function::Put, Some("k"), Value::Str("a".into())),
        ev(1, Done, Function::Get, Some("k"), Value::Str("a".into())),
        ev(2, Invoke, Function::Get, Some("k"), Value::Nil),
    ];
    assert!(ops::pair(&h).unwrap().iter().all(|r| r.value_ids.is_none()));
    let compact = crate::history::CompactHistory::from(crate::history::ImportedHistory {
        events: h.clone(),
        lines: vec![1, 2, 3, 4, 5],
    });
    let values = compact.interner().unwrap();
    let (nil, a) = (
        values.get(&Value::Nil).unwrap(),
        values.get(&Value::Str("a".into())).unwrap(),
    );
    let ids: Vec<_> = ops::pair(&compact)
        .unwrap()
        .iter()
        .map(|r| r.value_ids)
        .collect();
    // put a -> ok a; get nil -> ok a; an unanswered get: its invoke's id twice.
    assert_eq!(ids, vec![Some([a, a]), Some([nil, a]), Some([nil, nil])]);
}

#[test]
fn append_histories_of_both_verdicts_are_generated() {
    // The property tests above are only as good as their histories: both verdicts must occur.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        proptest::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 0..25),
        2usize..5,
        any::<u8>(),
    );
    let (mut yes, mut no) = (0, 0);
    for _ in 0..300 {
        let (c, clients, x) = strategy.new_tree(&mut runner).unwrap().current();
        match pruned_and_plain(&append_history(&c, clients, Some(x))).0 {
            Verdict::Linearizable => yes += 1,
            _ => no += 1,
        }
    }
    assert!(yes > 30 && no > 30, "linearizable {yes}, not {no}");
}

// ---------------------------------------------------------------------------------------------
// Semantics of outcomes.

use EventType::{Fail, Info, Invoke, Ok as Done};

#[test]
fn a_failed_write_did_not_happen() {
    let h = [
        ev(0, Invoke, Function::Write, None, int(1)),
        ev(0, Fail, Function::Write, None, int(1)),
        ev(1, Invoke, Function::Read, None, Value::Nil),
        ev(1, Done, Function::Read, None, int(1)),
    ];
    assert_eq!(verdict(&h, ModelKind::Register), Verdict::NotLinearizable);
}

#[test]
fn an_info_write_may_take_effect_later_or_never() {
    let base = [
        ev(0, Invoke, Function::Write, None, int(1)),
        ev(0, Info, Function::Write, None, int(1)),
    ];
    let read = |p, v: Value| {
        [
            ev(p, Invoke, Function::Read, None, Value::Nil),
            ev(p, Done, Function::Read, None, v),
        ]
    };
    // Seen long after it "timed out": fine. Not seen at all: fine.
    let mut h = base.to_vec();
    h.extend(read(1, Value::Nil));
    h.extend(read(2, int(1)));
    assert_eq!(verdict(&h, ModelKind::Register), Verdict::Linearizable);
    // But once seen it cannot be un-done: 1 then nil is impossible.
    let mut h = base.to_vec();
    h.extend(read(1, int(1)));
    h.extend(read(2, Value::Nil));
    assert_eq!(verdict(&h, ModelKind::Register), Verdict::NotLinearizable);
}

#[test]
fn an_unanswered_invoke_is_pending_forever() {
    let h = [
        ev(0, Invoke, Function::Write, None, int(3)),
        ev(1, Invoke, Function::Read, None, Value::Nil),
        ev(1, Done, Function::Read, None, int(3)),
    ];
    assert_eq!(verdict(&h, ModelKind::Register), Verdict::Linearizable);
}

#[test]
fn a_failed_cas_read_as_returning_false_needs_a_different_value() {
    // write 1; cas 1->2 fails. Knossos: the cas did not happen, fine. Porcupine: the cas
    // returned false although the value was 1: impossible.
    let h = [
        ev(0, Invoke, Function::Write, None, int(1)),
        ev(0, Done, Function::Write, None, int(1)),
        ev(1, Invoke, Function::Cas, None, pair_v(int(1), int(2))),
        ev(1, Fail, Function::Cas, None, pair_v(int(1), int(2))),
    ];
    assert_eq!(verdict(&h, ModelKind::CasRegister), Verdict::Linearizable);
    let mut o = Options::new(ModelKind::CasRegister);
    o.failed_cas_returns_false = true;
    let r = check_events(&h, &o).unwrap();
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(
        r.counterexample.unwrap().blocked.op,
        "cas 1 -> 2 (returned false)"
    );
}

#[test]
fn cas_register_needs_the_expected_value() {
    let h = [
        ev(0, Invoke, Function::Cas, None, pair_v(int(1), int(2))),
        ev(0, Done, Function::Cas, None, pair_v(int(1), int(2))),
    ];
    assert_eq!(
        verdict(&h, ModelKind::CasRegister),
        Verdict::NotLinearizable
    );
    let mut h2 = vec![
        ev(1, Invoke, Function::Write, None, int(1)),
        ev(1, Done, Function::Write, None, int(1)),
    ];
    h2.extend(h);
    assert_eq!(verdict(&h2, ModelKind::CasRegister), Verdict::Linearizable);
    // The plain register has no cas.
    assert!(check_events(&h2, &Options::new(ModelKind::Register)).is_err());
}

#[test]
fn key_value_semantics() {
    let k = Some("k");
    let s = |x: &str| Value::Str(x.into());
    // append to absent = the suffix; get of absent = nil; cas on absent fails.
    let h = [
        ev(0, Invoke, Function::Get, k, Value::Nil),
        ev(0, Done, Function::Get, k, Value::Nil),
        ev(0, Invoke, Function::Append, k, s("a")),
        ev(0, Done, Function::Append, k, s("a")),
        ev(0, Invoke, Function::Append, k, s("b")),
        ev(0, Done, Function::Append, k, s("b")),
        ev(0, Invoke, Function::Cas, k, pair_v(s("ab"), s("c"))),
        ev(0, Done, Function::Cas, k, pair_v(s("ab"), s("c"))),
        ev(0, Invoke, Function::Get, k, Value::Nil),
        ev(0, Done, Function::Get, k, s("c")),
    ];
    assert_eq!(verdict(&h, ModelKind::KeyValue), Verdict::Linearizable);
    let h = [
        ev(0, Invoke, Function::Cas, k, pair_v(s(""), s("c"))),
        ev(0, Done, Function::Cas, k, pair_v(s(""), s("c"))),
    ];
    assert_eq!(verdict(&h, ModelKind::KeyValue), Verdict::NotLinearizable);
    // Keys are independent: a stale read on one key is found in its own part.
    let h = [
        ev(0, Invoke, Function::Put, Some("a"), s("1")),
        ev(0, Done, Function::Put, Some("a"), s("1")),
        ev(1, Invoke, Function::Put, Some("b"), s("2")),
        ev(1, Done, Function::Put, Some("b"), s("2")),
        ev(0, Invoke, Function::Get, Some("a"), Value::Nil),
        ev(0, Done, Function::Get, Some("a"), Value::Nil),
    ];
    let r = check_events(&h, &Options::new(ModelKind::KeyValue)).unwrap();
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(r.partitions, 2);
    assert_eq!(r.counterexample.unwrap().partition.as_deref(), Some("a"));
}

#[test]
fn mutex_semantics() {
    let h = [
        ev(0, Invoke, Function::Acquire, None, Value::Nil),
        ev(0, Done, Function::Acquire, None, Value::Nil),
        ev(1, Invoke, Function::Acquire, None, Value::Nil),
        ev(1, Done, Function::Acquire, None, Value::Nil),
    ];
    assert_eq!(verdict(&h, ModelKind::Mutex), Verdict::NotLinearizable);
    let h = [
        ev(0, Invoke, Function::Acquire, None, Value::Nil),
        ev(1, Invoke, Function::Acquire, None, Value::Nil),
        ev(0, Done, Function::Acquire, None, Value::Nil),
        ev(0, Invoke, Function::Release, None, Value::Nil),
        ev(0, Done, Function::Release, None, Value::Nil),
        ev(1, Done, Function::Acquire, None, Value::Nil),
    ];
    assert_eq!(verdict(&h, ModelKind::Mutex), Verdict::Linearizable);
    let h = [
        ev(0, Invoke, Function::Release, None, Value::Nil),
        ev(0, Done, Function::Release, None, Value::Nil),
    ];
    assert_eq!(verdict(&h, ModelKind::Mutex), Verdict::NotLinearizable);
}

#[test]
fn multi_register_semantics() {
    let kw = |s: &str| Value::Str(s.into());
    let micro = |f: &str, k: &str, v: Value| Value::List(vec![kw(f), kw(k), v]);
    let txn = |ops: Vec<Value>| Value::List(ops);
    let h = [
        ev(
            0,
            Invoke,
            Function::Txn,
            None,
            txn(vec![
                micro("write", "x", int(1)),
                micro("read", "y", Value::Nil),
            ]),
        ),
        ev(
            0,
            Done,
            Function::Txn,
            None,
            txn(vec![
                micro("write", "x", int(1)),
                micro("read", "y", int(0)),
            ]),
        ),
        ev(
            1,
            Invoke,
            Function::Txn,
            None,
            txn(vec![micro("read", "x", Value::Nil)]),
        ),
        ev(
            1,
            Done,
            Function::Txn,
            None,
            txn(vec![micro("read", "x", int(1))]),
        ),
    ];
    assert_eq!(verdict(&h, ModelKind::MultiRegister), Verdict::Linearizable);
    let mut bad = h.to_vec();
    bad[3] = ev(
        1,
        Done,
        Function::Txn,
        None,
        txn(vec![micro("read", "x", int(2))]),
    );
    assert_eq!(
        verdict(&bad, ModelKind::MultiRegister),
        Verdict::NotLinearizable
    );
    // A read of nil inside a completed txn accepts any value (Knossos).
    let mut any = h.to_vec();
    any[3] = ev(
        1,
        Done,
        Function::Txn,
        None,
        txn(vec![micro("read", "x", Value::Nil)]),
    );
    assert_eq!(
        verdict(&any, ModelKind::MultiRegister),
        Verdict::Linearizable
    );
}

#[test]
fn a_read_of_a_value_never_written_is_decided_before_searching() {
    let h = [
        ev(0, Invoke, Function::Write, None, int(1)),
        ev(1, Invoke, Function::Read, None, Value::Nil),
        ev(1, Done, Function::Read, None, int(7)),
        ev(0, Done, Function::Write, None, int(1)),
    ];
    let r = check_events(&h, &Options::new(ModelKind::CasRegister)).unwrap();
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let c = r.counterexample.unwrap();
    let (op, why) = c.impossible.unwrap();
    assert_eq!(op.op, "read -> 7");
    assert!(
        why.contains("no operation invoked before it returned writes 7"),
        "{why}"
    );
}

#[test]
fn a_value_no_write_or_appends_can_make_is_decided_before_searching() {
    // On "k": a put of "a", an append of "x;" refused (`fail`: it never took effect) and one of
    // "y;" answered `ok`. A read of "ay;" is fine; one of "ax;" needs the refused append.
    let s = |v: &str| Value::Str(v.into());
    let k = Some("k");
    let read = |seen: &str| {
        vec![
            ev(0, Invoke, Function::Put, k, s("a")),
            ev(0, Done, Function::Put, k, s("a")),
            ev(1, Invoke, Function::Append, k, s("x;")),
            ev(1, Fail, Function::Append, k, s("x;")),
            ev(2, Invoke, Function::Append, k, s("y;")),
            ev(2, Done, Function::Append, k, s("y;")),
            ev(3, Invoke, Function::Get, k, Value::Nil),
            ev(3, Done, Function::Get, k, s(seen)),
        ]
    };
    let options = Options::new(ModelKind::KeyValue);
    let fine = check_events(&read("ay;"), &options).unwrap();
    assert_eq!((fine.verdict, fine.steps), (Verdict::Linearizable, 0));
    let r = check_events(&read("ax;"), &options).unwrap();
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let (op, why) = r.counterexample.unwrap().impossible.unwrap();
    assert!(op.op.contains("\"ax;\""), "{}", op.op);
    assert!(
        why.contains(
            "it read \"ax;\", but no operation that may have taken effect writes that value or makes it by appending (key \"k\")"
        ),
        "{why}"
    );
    // The same for a cas answered `ok` that replaced "ax;".
    let mut cas = read("ay;");
    let pair = pair_v(s("ax;"), s("b"));
    cas.push(ev(4, Invoke, Function::Cas, k, pair.clone()));
    cas.push(ev(4, Done, Function::Cas, k, pair));
    let r = check_events(&cas, &options).unwrap();
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let (_, why) = r.counterexample.unwrap().impossible.unwrap();
    assert!(why.contains("it replaced \"ax;\""), "{why}");
}

#[test]
fn a_cas_of_unknown_outcome_expecting_a_value_nothing_makes_is_left_out_of_the_read_mapping() {
    // Keys start absent; clients append, and one cas expecting "" (never a value of the key: an
    // absent key is not the empty string) times out. It cannot have taken effect, so the read
    // mapping decides the history without a search, as without the cas.
    let s = |v: &str| Value::Str(v.into());
    let k = Some("k");
    let mut h = vec![
        ev(0, Invoke, Function::Append, k, s("x;")),
        ev(0, Done, Function::Append, k, s("x;")),
        ev(1, Invoke, Function::Cas, k, pair_v(s(""), s("c"))),
        ev(2, Invoke, Function::Append, k, s("y;")),
        ev(2, Done, Function::Append, k, s("y;")),
        ev(3, Invoke, Function::Get, k, Value::Nil),
        ev(3, Done, Function::Get, k, s("x;y;")),
        ev(1, Info, Function::Cas, k, pair_v(s(""), s("c"))),
    ];
    let options = Options::new(ModelKind::KeyValue);
    let (mapped, steps, searched) = mapped_and_searched(&h, ModelKind::KeyValue);
    assert_eq!(
        (mapped, steps, searched),
        (Verdict::Linearizable, 0, Verdict::Linearizable)
    );
    // A read of "c" would need the cas to have taken effect: not linearizable, by either way.
    h.push(ev(3, Invoke, Function::Get, k, Value::Nil));
    h.push(ev(3, Done, Function::Get, k, s("c")));
    let (mapped, _, searched) = mapped_and_searched(&h, ModelKind::KeyValue);
    assert_eq!(
        (mapped, searched),
        (Verdict::NotLinearizable, Verdict::NotLinearizable)
    );
    assert_eq!(
        check_events(&h, &options).unwrap().verdict,
        Verdict::NotLinearizable
    );
}

/// A register event of [`hard_register_history`] as a key-value one: a write is a `put` of the
/// number as a string, a read a `get`.
fn as_key_value(e: &HistoryEvent) -> (Function, Value) {
    let f = if e.f == Function::Write {
        Function::Put
    } else {
        Function::Get
    };
    let v = match &e.value {
        Value::Int(i) => Value::Str(i.to_string()),
        other => other.clone(),
    };
    (f, v)
}

/// `writers` concurrent writes of 7 values, then concurrent reads of different values that
/// were written: not linearizable (the reads begin after every write ended, so they must agree),
/// but the search must try every subset of the writes to see it.
fn hard_register_history(writers: u64) -> Vec<HistoryEvent> {
    let mut h = Vec::new();
    for p in 0..writers {
        h.push(ev(p, Invoke, Function::Write, None, int(p as i64 % 7)));
    }
    for p in 0..writers {
        h.push(ev(p, Done, Function::Write, None, int(p as i64 % 7)));
    }
    for p in 0..10u64 {
        h.push(ev(100 + p, Invoke, Function::Read, None, Value::Nil));
    }
    for p in 0..10u64 {
        h.push(ev(
            100 + p,
            Done,
            Function::Read,
            None,
            int((100 + p) as i64 % 7),
        ));
    }
    h
}

#[test]
fn a_spent_memory_limit_gives_unknown_but_an_impossible_read_stays_a_violation() {
    let h = hard_register_history(40);
    let mut o = Options::new(ModelKind::Register);
    o.memory_limit_bytes = 0;
    let r = check_events(&h, &o).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.summary());
    assert!(r.unknown_reason.unwrap().contains("memory limit"));
    // Reads of 7, 8 and 9 were never written: decided without searching, despite the budget.
    let mut bad = h;
    for (i, e) in bad.iter_mut().rev().take(3).enumerate() {
        e.value = int(7 + i as i64);
    }
    assert_eq!(
        check_events(&bad, &o).unwrap().verdict,
        Verdict::NotLinearizable
    );
}

#[test]
fn a_zero_time_limit_gives_unknown() {
    // A zero time limit has passed before the check starts: unknown, whatever the history,
    // even one that a search of a few steps (or none) would decide.
    let easy = [
        ev(0, Invoke, Function::Write, None, int(1)),
        ev(0, Done, Function::Write, None, int(1)),
    ];
    for h in [&easy[..], &hard_register_history(40)[..]] {
        let mut o = Options::new(ModelKind::Register);
        o.time_limit = Some(std::time::Duration::ZERO);
        let r = check_events(h, &o).unwrap();
        assert_eq!(r.verdict, Verdict::Unknown, "{}", r.summary());
        assert!(r.unknown_reason.unwrap().contains("time limit"));
        assert_eq!(r.steps, 0);
    }
}

#[test]
fn the_step_limit_gives_the_same_unknown_or_verdict_on_every_run() {
    // The step limit counts work: the verdict, the steps used and the reason do not depend on
    // the machine or on how the parts were scheduled on threads.
    let s = |x: &str| Value::Str(x.into());
    let mut h = Vec::new();
    // Ten easy keys and one harder one (a register history above, on key "z").
    for k in 0..10 {
        let key = format!("k{k}");
        h.push(ev(200 + k, Invoke, Function::Put, Some(&key), s("a")));
        h.push(ev(200 + k, Done, Function::Put, Some(&key), s("a")));
    }
    for e in hard_register_history(12) {
        let (f, v) = as_key_value(&e);
        h.push(ev(e.process, e.kind, f, Some("z"), v));
    }
    let mut o = Options::new(ModelKind::KeyValue);
    o.step_limit = 100_000;
    let first = check_events(&h, &o).unwrap();
    assert_eq!(first.verdict, Verdict::Unknown, "{}", first.summary());
    assert!(
        first
            .unknown_reason
            .as_deref()
            .unwrap()
            .contains("step limit of 100000")
    );
    assert!(first.steps <= 100_000, "{}", first.steps);
    for _ in 0..5 {
        let again = check_events(&h, &o).unwrap();
        assert_eq!((again.verdict, again.steps), (first.verdict, first.steps));
    }
    // With enough steps it is decided, and a zero step limit decides nothing.
    o.step_limit = DEFAULT_STEP_LIMIT;
    let decided = check_events(&h, &o).unwrap();
    assert_eq!(
        decided.verdict,
        Verdict::NotLinearizable,
        "{}",
        decided.summary()
    );
    assert!(decided.steps > 100_000, "{}", decided.steps);
    o.step_limit = 0;
    assert_eq!(check_events(&h, &o).unwrap().verdict, Verdict::Unknown);
}

#[test]
fn the_time_limit_covers_the_pre_passes() {
    // A history whose pre-pass (unobservable unknown-outcome writes) is the long part: with a
    // zero time limit the check stops before it.
    let s = |x: &str| Value::Str(x.into());
    let mut h = Vec::new();
    for p in 0..2000u64 {
        h.push(ev(
            p,
            Invoke,
            Function::Append,
            Some("k"),
            s(&format!("x{p};")),
        ));
        h.push(ev(
            p,
            Info,
            Function::Append,
            Some("k"),
            s(&format!("x{p};")),
        ));
    }
    let mut o = Options::new(ModelKind::KeyValue);
    o.time_limit = Some(std::time::Duration::ZERO);
    let r = check_events(&h, &o).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown);
    let mut model = models::KeyValue::new(&Value::Nil, true);
    let raw = ops::pair(&h).unwrap();
    let converted: Vec<_> = raw
        .iter()
        .map(|r| Operation::convert(&mut model, r).unwrap())
        .collect();
    let spent = Budget::new(Some(std::time::Duration::ZERO));
    assert!(matches!(
        model.unobservable(&converted, &spent),
        Err(Exhausted::Time(_))
    ));
    assert!(
        model
            .unobservable(&converted, &Budget::new(None))
            .unwrap()
            .iter()
            .all(|&u| u)
    );
}

// ---------------------------------------------------------------------------------------------
// Golden counterexample text.

#[test]
fn counterexample_text_is_stable() {
    // The timed-out write 3 is observed (process 3 reads 3), so it is part of the search and of
    // the counterexample; an unobserved one would be pruned before searching.
    let h = [
        ev(0, Invoke, Function::Write, None, int(1)),
        ev(0, Done, Function::Write, None, int(1)),
        ev(1, Invoke, Function::Cas, None, pair_v(int(1), int(2))),
        ev(2, Invoke, Function::Write, None, int(3)),
        ev(2, Info, Function::Write, None, int(3)),
        ev(1, Done, Function::Cas, None, pair_v(int(1), int(2))),
        ev(3, Invoke, Function::Read, None, Value::Nil),
        ev(3, Done, Function::Read, None, int(3)),
        ev(0, Invoke, Function::Read, None, Value::Nil),
        ev(0, Done, Function::Read, None, int(1)),
    ];
    let r = check_events(&h, &Options::new(ModelKind::CasRegister)).unwrap();
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let text = r.counterexample.unwrap().render(&Locator::Event);
    let expected = "\
longest linearizable prefix found: 4 operation(s)
     1. process 0: write 1  (invoked event 0, completed event 1)  => 1
     2. process 1: cas 1 -> 2  (invoked event 2, completed event 5)  => 2
     3. process 2: write 3  (invoked event 3, completed never (outcome unknown))  => 3
     4. process 3: read -> 3  (invoked event 6, completed event 7)  => 3
state after the prefix: 3
cannot place: process 0: read -> 1  (invoked event 8, completed event 9)
  it is impossible in state 3
no other operation was invoked before it completed
decided before searching: process 0: read -> 1 (invoked event 8, completed event 9) can never be placed: it read 1, but the only write of 1 had completed before a write of 2 was invoked, which completed before the read began
";
    assert_eq!(text, expected, "got:\n{text}");
}

#[test]
fn counterexample_lists_concurrent_operations() {
    let h = [
        ev(0, Invoke, Function::Write, None, int(1)),
        ev(1, Invoke, Function::Read, None, Value::Nil),
        ev(1, Done, Function::Read, None, int(1)),
        ev(2, Invoke, Function::Read, None, Value::Nil),
        ev(2, Done, Function::Read, None, Value::Nil),
        ev(0, Done, Function::Write, None, int(1)),
    ];
    let r = check_events(&h, &Options::new(ModelKind::Register)).unwrap();
    let c = r.counterexample.unwrap();
    let text = c.render(&Locator::Line(&[10, 11, 12, 13, 14, 15]));
    let expected = "\
longest linearizable prefix found: 2 operation(s)
     1. process 0: write 1  (invoked line 10, completed line 15)  => 1
     2. process 1: read -> 1  (invoked line 11, completed line 12)  => 1
state after the prefix: 1
cannot place: process 2: read -> nil  (invoked line 13, completed line 14)
  it is impossible in state 1
no other operation was invoked before it completed
";
    assert_eq!(text, expected, "got:\n{text}");
}

// ---------------------------------------------------------------------------------------------
// The `faultline run` entry point.

#[test]
fn run_check_reports_pass_and_fail_with_evidence() {
    let s = |x: &str| Value::Str(x.into());
    let mut h = vec![
        ev(0, Invoke, Function::Put, Some("k1"), s("a")),
        ev(0, Done, Function::Put, Some("k1"), s("a")),
        ev(1, Invoke, Function::Get, Some("k1"), Value::Nil),
        ev(1, Done, Function::Get, Some("k1"), s("a")),
    ];
    for (i, e) in h.iter_mut().enumerate() {
        e.index = i as u64;
        e.time_ns = (i as u64 + 1) * 1_000_000;
    }
    let config = Config::default();
    let r = check_run_history(&h, ModelKind::KeyValue, &config);
    assert_eq!(r.verdict, crate::scenario::Verdict::Pass, "{}", r.summary);
    assert_eq!(r.metrics["operations"], 2);
    h[3].value = s("b");
    let r = check_run_history(&h, ModelKind::KeyValue, &config);
    assert_eq!(r.verdict, crate::scenario::Verdict::Fail, "{}", r.summary);
    assert!(
        r.evidence
            .iter()
            .any(|l| l.contains("cannot place: process 1: get \"k1\" -> \"b\"  (invoked event 2 at 3.0ms, completed event 3 at 4.0ms)")),
        "{:?}",
        r.evidence
    );
    // A malformed history is not a verdict on the system: unknown, with the reason.
    let r = check_run_history(&h[1..], ModelKind::KeyValue, &config);
    assert_eq!(r.verdict, crate::scenario::Verdict::Unknown);
    assert!(
        r.evidence[0].contains("no outstanding invoke"),
        "{:?}",
        r.evidence
    );
}

#[test]
fn the_run_check_reads_a_borrowed_view_of_the_history_like_a_copy() {
    // `run_check` hands the check `Vec<&HistoryEvent>` (no clone of the run's history); the
    // verdict, evidence and timeline must be those of the same events owned.
    let s = |x: &str| Value::Str(x.into());
    let mut h = vec![
        ev(0, Invoke, Function::Put, Some("k1"), s("a")),
        ev(0, Done, Function::Put, Some("k1"), s("a")),
        ev(1, Invoke, Function::Get, Some("k1"), Value::Nil),
        ev(1, Done, Function::Get, Some("k1"), s("b")),
    ];
    for (i, e) in h.iter_mut().enumerate() {
        e.time_ns = (i as u64 + 1) * 1_000_000;
        e.node = format!("c{}", e.process + 1);
    }
    let config = Config::default();
    let owned = check_run_history(&h, ModelKind::KeyValue, &config);
    let view: Vec<&HistoryEvent> = h.iter().collect();
    let borrowed = check_run_history(&view, ModelKind::KeyValue, &config);
    assert_eq!(owned.verdict, crate::scenario::Verdict::Fail);
    assert_eq!(borrowed.verdict, owned.verdict);
    assert_eq!(borrowed.evidence, owned.evidence);
    assert_eq!(borrowed.details, owned.details);
    let nodes = owned.details.as_ref().unwrap()["operations"][1]["node"].clone();
    assert_eq!(nodes, "c2");
}

#[test]
fn a_compact_history_read_from_jsonl_checks_like_its_events() {
    let mut h = Vec::new();
    for i in 0..40u64 {
        let key = format!("k{}", i % 3);
        let v = Value::Str(format!("v{i}"));
        h.push(ev(i % 4, Invoke, Function::Put, Some(&key), v.clone()));
        h.push(ev(i % 4, Done, Function::Put, Some(&key), v.clone()));
        h.push(ev(9, Invoke, Function::Get, Some(&key), Value::Nil));
        h.push(ev(9, Done, Function::Get, Some(&key), v));
    }
    let bytes = crate::history::to_jsonl(&h);
    let imported = Imported::read(None, &bytes, None, None).unwrap();
    let options = imported.options();
    let from_file = imported.check(&options).unwrap();
    let from_events = check_events(&h, &options).unwrap();
    assert_eq!(from_file.verdict, Verdict::Linearizable);
    assert_eq!(from_file, from_events);
    // A stale read on the last line: the same counterexample, located by line.
    let last = h.len() - 1;
    h[last].value = Value::Str("v0".into());
    let bytes = crate::history::to_jsonl(&h);
    let imported = Imported::read(None, &bytes, None, None).unwrap();
    let from_file = imported.check(&options).unwrap();
    assert_eq!(from_file, check_events(&h, &options).unwrap());
    let text = from_file
        .counterexample
        .unwrap()
        .render(&Locator::Line(&imported.history.lines));
    assert!(
        text.contains(&format!("completed line {}", h.len())),
        "{text}"
    );
}

#[test]
fn config_reads_from_toml() {
    let c: Config =
        toml::from_str("time_limit = \"5s\"\nmemory_limit_mib = 64\nstep_limit = 1000").unwrap();
    assert!(c.enabled);
    assert_eq!(c.time_limit, Some(Duration::from_secs(5)));
    assert_eq!(c.memory_limit_mib, 64);
    assert_eq!(c.step_limit, 1000);
    // By default the budget is a count: no wall-clock limit.
    let d: Config = toml::from_str("").unwrap();
    assert_eq!(d, Config::default());
    assert_eq!(d.time_limit, None);
    assert_eq!(d.step_limit, DEFAULT_STEP_LIMIT);
    assert!(toml::from_str::<Config>("frobnicate = 1").is_err());
}

#[test]
fn the_model_is_guessed_from_the_functions() {
    let e = |f: Function, key: Option<&str>| ev(0, Invoke, f, key, Value::Nil);
    assert_eq!(
        ModelKind::detect(&[e(Function::Read, None)]),
        Some(ModelKind::CasRegister)
    );
    assert_eq!(
        ModelKind::detect(&[e(Function::Get, Some("k"))]),
        Some(ModelKind::KeyValue)
    );
    assert_eq!(
        ModelKind::detect(&[e(Function::Read, Some("k"))]),
        Some(ModelKind::KeyValue)
    );
    assert_eq!(
        ModelKind::detect(&[e(Function::Acquire, None)]),
        Some(ModelKind::Mutex)
    );
    assert_eq!(
        ModelKind::detect(&[e(Function::Txn, None)]),
        Some(ModelKind::MultiRegister)
    );
    assert_eq!(
        ModelKind::detect(&[e(Function::Broadcast, None), e(Function::Read, None)]),
        None
    );
    assert_eq!(ModelKind::detect(&Vec::<HistoryEvent>::new()), None);
    assert_eq!("kv".parse::<ModelKind>(), Ok(ModelKind::KeyValue));
    assert!("queue".parse::<ModelKind>().is_err());
}

// ---------------------------------------------------------------------------------------------
// Pruning of unobservable unknown-outcome writes.

fn raw_op<'a>(
    f: Function,
    invoke: &'a Value,
    outcome: RawOutcome<'a>,
    call: usize,
    ret: Option<usize>,
) -> RawOp<'a> {
    RawOp {
        process: call as u64,
        f,
        key: Some("k"),
        invoke,
        outcome,
        call,
        ret,
        value_ids: None,
    }
}

#[test]
fn unknown_writes_that_nothing_observes_are_marked_and_observed_ones_are_not() {
    use crate::check::linearizability::models::KeyValue;
    let s = |t: &str| Value::Str(t.to_string());
    let (a, x1, x2, b, cas, c, d) = (
        s("a"),
        s("x1;"),
        s("x2;"),
        s("b"),
        pair_v(s("zz"), s("c")),
        s("c"),
        s("d"),
    );
    let (ax2, nil) = (s("ax2;"), Value::Nil);
    let raw = [
        raw_op(Function::Put, &a, RawOutcome::Ok(&a), 0, Some(1)),
        raw_op(Function::Append, &x1, RawOutcome::Unknown, 2, None), // never read: marked
        raw_op(Function::Append, &x2, RawOutcome::Unknown, 3, None), // read as part of "ax2;"
        raw_op(Function::Get, &nil, RawOutcome::Ok(&ax2), 4, Some(5)),
        raw_op(Function::Put, &b, RawOutcome::Unknown, 6, None), // read below
        raw_op(Function::Get, &nil, RawOutcome::Ok(&b), 7, Some(8)),
        raw_op(Function::Cas, &cas, RawOutcome::Unknown, 9, None), // writes "c": never read
        raw_op(Function::Get, &nil, RawOutcome::Ok(&d), 10, Some(11)), // returned before the put of d
        raw_op(Function::Put, &d, RawOutcome::Unknown, 12, None),      // so this put is unobserved
        raw_op(Function::Put, &c, RawOutcome::Ok(&c), 13, Some(14)), // known outcome: never marked
    ];
    let mut model = KeyValue::new(&Value::Nil, true);
    let ops: Vec<_> = raw
        .iter()
        .map(|r| Operation::convert(&mut model, r).unwrap())
        .collect();
    assert_eq!(
        model.unobservable(&ops, &Budget::new(None)).unwrap(),
        [
            false, true, false, false, false, false, true, false, true, false
        ]
    );
    // Without unknown-outcome writes (here: the known operations and an unknown-outcome read),
    // nothing is marked.
    let known: Vec<_> = [0, 3, 5, 7, 9]
        .iter()
        .map(|&i| ops[i].clone())
        .chain([Operation {
            output: None,
            ..ops[3].clone()
        }])
        .collect();
    assert_eq!(
        model.unobservable(&known, &Budget::new(None)).unwrap(),
        [false; 6]
    );
}

#[test]
fn pruning_keeps_verdicts_and_decides_histories_full_of_unobserved_timeouts() {
    // Forty concurrent appends time out and are never read; the reads see only the put. Every
    // subset of the appends is a different string, so without pruning the search space is 2^40.
    let mut h = vec![
        ev(
            100,
            Invoke,
            Function::Put,
            Some("k"),
            Value::Str("a".into()),
        ),
        ev(100, Done, Function::Put, Some("k"), Value::Str("a".into())),
    ];
    for p in 0..40u64 {
        h.push(ev(
            p,
            Invoke,
            Function::Append,
            Some("k"),
            Value::Str(format!("t{p};")),
        ));
    }
    for p in 0..40u64 {
        h.push(ev(
            p,
            Info,
            Function::Append,
            Some("k"),
            Value::Str(format!("t{p};")),
        ));
    }
    let reads = |h: &mut Vec<HistoryEvent>, seen: &str| {
        h.push(ev(200, Invoke, Function::Get, Some("k"), Value::Nil));
        h.push(ev(
            200,
            Done,
            Function::Get,
            Some("k"),
            Value::Str(seen.into()),
        ));
    };
    let mut ok = h.clone();
    reads(&mut ok, "a");
    let mut options = Options::new(ModelKind::KeyValue);
    options.step_limit = 10_000_000;
    assert_eq!(
        check_events(&ok, &options).unwrap().verdict,
        Verdict::Linearizable
    );
    // A read of a value no operation could produce stays a violation.
    let mut bad = h.clone();
    reads(&mut bad, "b");
    assert_eq!(
        check_events(&bad, &options).unwrap().verdict,
        Verdict::NotLinearizable
    );
    // A read that observes one timed-out append keeps it: linearizable only because it ran.
    let mut observed = h;
    reads(&mut observed, "at7;");
    assert_eq!(
        check_events(&observed, &options).unwrap().verdict,
        Verdict::Linearizable
    );
}

// ---------------------------------------------------------------------------------------------
// The read mapping against the search.

/// The verdict and steps of `h` with the read mapping, and the verdict of the search alone.
fn mapped_and_searched(h: &[HistoryEvent], model: ModelKind) -> (Verdict, u64, Verdict) {
    let mut o = Options::new(model);
    let mapped = check_events(h, &o).unwrap();
    o.read_mapping = false;
    let searched = check_events(h, &o).unwrap().verdict;
    (mapped.verdict, mapped.steps, searched)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn read_mapping_agrees_with_the_search_on_unique_registers(c in choices(), clients in 2usize..5) {
        let written = std::cell::Cell::new(0);
        let h = random_history(&c, clients, &unique_register_op(&written));
        let (mapped, _, searched) = mapped_and_searched(&h, ModelKind::CasRegister);
        prop_assert_eq!(mapped, searched, "{:?}", h);
    }

    #[test]
    fn read_mapping_agrees_with_the_search_on_unique_key_values(c in choices(), clients in 2usize..5) {
        let written = std::cell::Cell::new(0);
        let h = random_history(&c, clients, &unique_kv_op(&written));
        let (mapped, _, searched) = mapped_and_searched(&h, ModelKind::KeyValue);
        prop_assert_eq!(mapped, searched, "{:?}", h);
    }

    #[test]
    fn read_mapping_agrees_with_the_search_on_append_histories(
        c in proptest::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 0..40),
        clients in 2usize..6,
        corrupt in proptest::option::of(any::<u8>()),
    ) {
        let h = append_history(&c, clients, corrupt);
        let (mapped, steps, searched) = mapped_and_searched(&h, ModelKind::KeyValue);
        prop_assert_eq!(mapped, searched, "{:?}", h);
        if corrupt.is_none() {
            // Unique values: the mapping decides without a single search step.
            prop_assert_eq!((mapped, steps), (Verdict::Linearizable, 0), "{:?}", h);
        }
    }
}

#[test]
fn read_mapping_decides_appends_and_cas_by_the_values_read() {
    let s = |v: &str| Value::Str(v.into());
    let k = Some("k");
    // p0 puts "a", p1 appends "x;" and p2 "y;" concurrently; p3 reads "ax;y;", then p4 cas
    // "ax;y;" -> "b" and p3 reads "b".
    let base = vec![
        ev(0, Invoke, Function::Put, k, s("a")),
        ev(0, Done, Function::Put, k, s("a")),
        ev(1, Invoke, Function::Append, k, s("x;")),
        ev(2, Invoke, Function::Append, k, s("y;")),
        ev(2, Done, Function::Append, k, s("y;")),
        ev(1, Done, Function::Append, k, s("x;")),
        ev(3, Invoke, Function::Get, k, Value::Nil),
        ev(3, Done, Function::Get, k, s("ax;y;")),
        ev(4, Invoke, Function::Cas, k, pair_v(s("ax;y;"), s("b"))),
        ev(4, Done, Function::Cas, k, pair_v(s("ax;y;"), s("b"))),
    ];
    let mut ok = base.clone();
    ok.push(ev(3, Invoke, Function::Get, k, Value::Nil));
    ok.push(ev(3, Done, Function::Get, k, s("b")));
    let (mapped, steps, searched) = mapped_and_searched(&ok, ModelKind::KeyValue);
    assert_eq!(
        (mapped, steps, searched),
        (Verdict::Linearizable, 0, Verdict::Linearizable)
    );
    // A read of "ay;" after "ax;y;" was read: the appends' order is contradicted.
    let mut reordered = base.clone();
    reordered.push(ev(3, Invoke, Function::Get, k, Value::Nil));
    reordered.push(ev(3, Done, Function::Get, k, s("ay;")));
    let (mapped, _, searched) = mapped_and_searched(&reordered, ModelKind::KeyValue);
    assert_eq!(
        (mapped, searched),
        (Verdict::NotLinearizable, Verdict::NotLinearizable)
    );
    // The cas's old value read after the cas completed: its stretch and the cas's overlap.
    let mut stale = base;
    stale.push(ev(3, Invoke, Function::Get, k, Value::Nil));
    stale.push(ev(3, Done, Function::Get, k, s("ax;y;")));
    let (mapped, _, searched) = mapped_and_searched(&stale, ModelKind::KeyValue);
    assert_eq!(
        (mapped, searched),
        (Verdict::NotLinearizable, Verdict::NotLinearizable)
    );
}

#[test]
fn read_mapping_keeps_observed_timeouts_and_drops_unobserved_ones() {
    use read_mapping::{Access, Decision, Span, decide};
    let describe = |i: usize| format!("op {i}");
    let span = |call: usize, ret: Option<usize>| Span { call, ret };
    let put = |base| Access::Put { cell: 0, base };
    let read = |base| Access::Read {
        cell: 0,
        base,
        tokens: Box::default(),
    };
    // A timed-out put of 1 (never completes) read after an ok put of 2 completed: the put of 1
    // took effect late, which is fine.
    let late = [put(1), put(2), read(2), read(1)];
    let spans = [
        span(0, None),
        span(1, Some(2)),
        span(3, Some(4)),
        span(5, Some(6)),
    ];
    assert_eq!(decide(&late, &spans, &describe), Decision::Linearizable);
    // The same with the put of 1 completed before the put of 2 began: reading 1 after 2 is stale.
    let spans_ok = [
        span(0, Some(1)),
        span(2, Some(3)),
        span(4, Some(5)),
        span(6, Some(7)),
    ];
    assert!(matches!(
        decide(&late, &spans_ok, &describe),
        Decision::NotLinearizable(..)
    ));
    // A timed-out put nobody reads is dropped: the initial value read after it is fine.
    let unread = [put(1), read(0)];
    assert_eq!(
        decide(&unread, &[span(0, None), span(1, Some(2))], &describe),
        Decision::Linearizable
    );
    // An ok put nobody reads must still take effect somewhere: not while the initial value must
    // hold (read before it began and after it completed).
    let inside = [read(0), put(1), read(0)];
    let spans = [span(0, Some(5)), span(1, Some(2)), span(3, Some(4))];
    assert!(matches!(
        decide(&inside, &spans, &describe),
        Decision::NotLinearizable(1, _)
    ));
    // A value written twice is no mapping: undecided, the search decides.
    assert_eq!(
        decide(
            &[put(1), put(1)],
            &[span(0, Some(1)), span(2, Some(3))],
            &describe
        ),
        Decision::Undecided
    );
}

#[test]
fn a_part_that_fails_quickly_is_reported_before_hard_parts_search_long() {
    // Two keys whose searches fail only after more than 100,000 steps each (a register history
    // above, on keys "a" and "b") and one that fails after a few hundred ("q": its reads
    // disagree, values repeat, so neither the read mapping nor the early test decides it).
    // Rounds start small, so the hard keys stop early whatever the threads do, and only the
    // reported key is searched again for a longer prefix.
    let mut h = Vec::new();
    for (key, writers, base) in [("a", 12, 0), ("b", 12, 1000), ("q", 8, 2000)] {
        for e in hard_register_history(writers) {
            let (f, v) = as_key_value(&e);
            h.push(ev(base + e.process, e.kind, f, Some(key), v));
        }
    }
    let r = check_events(&h, &Options::new(ModelKind::KeyValue)).unwrap();
    assert_eq!(r.verdict, Verdict::NotLinearizable, "{}", r.summary());
    let c = r.counterexample.as_ref().unwrap();
    assert_eq!(c.partition.as_deref(), Some("q"));
    // The first round (three parts of at most FIRST_ROUND_STEPS each) and the plain search of
    // "q" for its prefix; a first round as long as one hard search would pass 100,000.
    assert!(r.steps < 50_000, "{} steps", r.steps);
    // Alone, a hard key takes far more steps than the whole check above.
    let alone: Vec<HistoryEvent> = h
        .iter()
        .filter(|e| e.key.as_deref() == Some("a"))
        .cloned()
        .collect();
    let a = check_events(&alone, &Options::new(ModelKind::KeyValue)).unwrap();
    assert_eq!(a.verdict, Verdict::NotLinearizable, "{}", a.summary());
    assert!(a.steps > 100_000, "{} steps", a.steps);
}

#[test]
fn parts_converted_in_runs_report_the_first_error_in_key_order() {
    // 30 keys, so that the parts are converted in several runs (a few per thread). Keys "k07"
    // and "k21" each hold two bad cas values; "k21"'s come first in the history, but "k07" is
    // first in key order, and its first bad operation is reported.
    let s = |t: &str| Value::Str(t.to_string());
    let mut h = Vec::new();
    let mut bad = Vec::new();
    for round in 0..6 {
        for k in 0..30u64 {
            let key = format!("k{k:02}");
            let is_bad = matches!((k, round), (21, 1) | (21, 2) | (7, 3) | (7, 4));
            let value = if is_bad {
                s("not a pair")
            } else {
                pair_v(s("x"), s(&format!("{key}-{round}")))
            };
            if is_bad {
                bad.push((key.clone(), h.len() + 1));
            }
            h.push(ev(
                k,
                EventType::Invoke,
                Function::Cas,
                Some(&key),
                value.clone(),
            ));
            h.push(ev(k, EventType::Ok, Function::Cas, Some(&key), value));
        }
    }
    assert_eq!(bad[0].0, "k21");
    let compact = crate::history::CompactHistory::from(h.clone());
    let e = check_events(&h[..], &Options::new(ModelKind::KeyValue)).unwrap_err();
    assert_eq!(e.event, bad[2].1, "{e}");
    assert!(e.found.contains("a cas value of `\"not a pair\"`"), "{e}");
    let e = check_events(&compact, &Options::new(ModelKind::KeyValue)).unwrap_err();
    assert_eq!(e.event, bad[2].1, "{e}");
}
