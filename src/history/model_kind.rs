//! Which linearizability model a history follows: named by a workload
//! ([`crate::family::HistoryTraits`]), guessed from an imported history, chosen on the command
//! line. The models themselves are in `check::linearizability`.

use serde::Serialize;

use super::{Events, Function, Value};

/// The linearizability models a history can be checked against (implemented in
/// `check::linearizability::models`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A read/write register ([`crate::check::linearizability::models::Register`]).
    Register,
    /// A read/write/cas register ([`crate::check::linearizability::models::Register`]).
    CasRegister,
    /// A key-value store, get/put/append/cas ([`crate::check::linearizability::models::KeyValue`]).
    #[serde(rename = "kv")]
    KeyValue,
    /// A lock ([`crate::check::linearizability::models::Mutex`]).
    Mutex,
    /// Registers read and written by transactions
    /// ([`crate::check::linearizability::models::MultiRegister`]).
    MultiRegister,
}

impl ModelKind {
    /// True if the model has a meaning for operations of `function` (a history may hold others,
    /// such as a lock client's writes to its storage, which a mutex check leaves out).
    pub fn speaks(self, function: Function) -> bool {
        match self {
            ModelKind::Register => matches!(function, Function::Read | Function::Write),
            ModelKind::CasRegister => {
                matches!(function, Function::Read | Function::Write | Function::Cas)
            }
            ModelKind::KeyValue => matches!(
                function,
                Function::Get | Function::Put | Function::Append | Function::Cas
            ),
            ModelKind::Mutex => matches!(function, Function::Acquire | Function::Release),
            ModelKind::MultiRegister => matches!(function, Function::Txn),
        }
    }
}

impl ModelKind {
    /// Every model with its command-line name.
    pub const ALL: [(ModelKind, &'static str); 5] = [
        (ModelKind::Register, "register"),
        (ModelKind::CasRegister, "cas-register"),
        (ModelKind::KeyValue, "kv"),
        (ModelKind::Mutex, "mutex"),
        (ModelKind::MultiRegister, "multi-register"),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        ModelKind::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }

    /// Guesses the model from the functions used: get/put/append (or any key) → kv; txn →
    /// multi-register; acquire/release → mutex; read/write/cas → cas-register (a superset of
    /// register). `None` for an empty history, a broadcast history, or other functions.
    pub fn detect<E: Events + ?Sized>(events: &E) -> Option<ModelKind> {
        let has = |fs: &[Function]| (0..events.len()).any(|i| fs.contains(&events.event(i).f));
        if has(&[Function::Broadcast]) {
            // A broadcast history (its reads return sets): no model here checks it.
            return None;
        }
        if has(&[Function::Get, Function::Put, Function::Append])
            || (0..events.len()).any(|i| events.event(i).key.is_some())
        {
            Some(ModelKind::KeyValue)
        } else if has(&[Function::Txn]) {
            Some(ModelKind::MultiRegister)
        } else if has(&[Function::Acquire, Function::Release]) {
            Some(ModelKind::Mutex)
        } else if has(&[Function::Read, Function::Write, Function::Cas]) {
            Some(ModelKind::CasRegister)
        } else {
            None
        }
    }

    /// The starting value when none is given: `nil` (absent), except 0 for the multi-register
    /// (Knossos's data starts x and y at 0).
    pub fn default_initial(self) -> Value {
        match self {
            ModelKind::MultiRegister => Value::Int(0),
            _ => Value::Nil,
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ModelKind::ALL
            .iter()
            .find(|(_, n)| *n == s || (s == "key-value" && *n == "kv"))
            .map(|(m, _)| *m)
            .ok_or_else(|| {
                format!("unknown model `{s}`; expected register, cas-register, kv, mutex or multi-register")
            })
    }
}
