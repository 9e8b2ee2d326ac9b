//! Erased values that cross the kernel: messages, timer payloads and observations.
//!
//! The simulator carries every family's messages, timers and observations without knowing their
//! types (ARCHITECTURE.md, "Families": the kernel knows no family). A [`Payload`] boxes any
//! value whose type is [`Wire`]: plain data that can be cloned (the network duplicates
//! messages), compared (unit tests), and written to the trace. A process gets its own type back
//! with [`Payload::downcast`]; a check reads the observations it understands with
//! [`Payload::downcast_ref`] and skips the rest.
//!
//! The trace writes a payload as the compact JSON and the postcard encoding of the boxed value
//! itself (not of the box), so a family's values appear in the trace exactly as its own
//! `Serialize` writes them. Both encodings are monomorphized per type ([`Wire::write_json`],
//! [`Wire::write_binary`]): one virtual call per value, not per field, on the hottest path of a
//! run. Other serializers (reports) go through `erased_serde`.

use std::any::{Any, TypeId};
use std::fmt;

use serde::Serialize;

/// A value a payload can hold. Implemented for every `Clone + Debug + PartialEq + Serialize +
/// Send + Sync + 'static` type; families never implement it by hand.
pub trait Wire: Any + Send + Sync + fmt::Debug {
    /// A boxed copy.
    fn clone_wire(&self) -> Box<dyn Wire>;
    /// Equality with another payload's value (false if the types differ).
    fn eq_wire(&self, other: &dyn Wire) -> bool;
    /// Appends the value's compact JSON to `out`.
    fn write_json(&self, out: &mut Vec<u8>);
    /// Appends the value's postcard encoding to `out` (the trace hash's binary record).
    fn write_binary(&self, out: Vec<u8>) -> Vec<u8>;
    /// The value as a type-erased `Serialize`, for any other serializer.
    fn as_serialize(&self) -> &dyn erased_serde::Serialize;
    /// The value as `Any`, for downcasting by reference.
    fn as_any(&self) -> &dyn Any;
    /// The boxed value as `Any`, for downcasting by value.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    /// The Rust type's name, for debugging and wrong-protocol drops.
    fn type_name(&self) -> &'static str;
}

impl<T> Wire for T
where
    T: Any + Send + Sync + Clone + fmt::Debug + PartialEq + Serialize,
{
    fn clone_wire(&self) -> Box<dyn Wire> {
        Box::new(self.clone())
    }

    fn eq_wire(&self, other: &dyn Wire) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("payloads serialize");
    }

    fn write_binary(&self, out: Vec<u8>) -> Vec<u8> {
        postcard::to_extend(self, out).expect("payloads serialize")
    }

    fn as_serialize(&self) -> &dyn erased_serde::Serialize {
        self
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

/// One erased value: a message, a timer payload or an observation. See the module docs.
pub struct Payload(Box<dyn Wire>);

impl Payload {
    /// Boxes `value`. A `Payload` passed in is taken as it is, never boxed twice.
    pub fn new<T: Wire>(value: T) -> Payload {
        if TypeId::of::<T>() == TypeId::of::<Payload>() {
            let mut slot = Some(value);
            let any: &mut dyn Any = &mut slot;
            return any
                .downcast_mut::<Option<Payload>>()
                .and_then(Option::take)
                .expect("the type was just compared");
        }
        Payload(Box::new(value))
    }

    /// The value if it is a `T`, else the payload back unchanged.
    pub fn downcast<T: Wire>(self) -> Result<T, Payload> {
        if self.is::<T>() {
            Ok(*self
                .0
                .into_any()
                .downcast::<T>()
                .expect("the type was just checked"))
        } else {
            Err(self)
        }
    }

    /// A reference to the value if it is a `T`.
    pub fn downcast_ref<T: Wire>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }

    /// True if the value is a `T`.
    pub fn is<T: Wire>(&self) -> bool {
        self.0.as_any().type_id() == TypeId::of::<T>()
    }

    /// The boxed value, for writing it (see [`Wire`]).
    pub fn value(&self) -> &dyn Wire {
        &*self.0
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        Payload(self.0.clone_wire())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_wire(&*other.0)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Payload {
    /// Serializes the value itself, as its own `Serialize` does.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        erased_serde::serialize(self.0.as_serialize(), serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize)]
    struct Ping(u32);

    #[derive(Clone, Debug, PartialEq, Serialize)]
    struct Pong(u32);

    #[test]
    fn a_payload_gives_back_its_own_type_and_refuses_others() {
        let p = Payload::new(Ping(7));
        assert!(p.is::<Ping>());
        assert_eq!(p.downcast_ref::<Pong>(), None);
        let p = p.downcast::<Pong>().expect_err("not a pong");
        assert_eq!(p.downcast::<Ping>().expect("a ping"), Ping(7));
    }

    #[test]
    fn a_payload_is_never_boxed_twice() {
        let inner = Payload::new(Ping(1));
        let outer = Payload::new(inner);
        assert!(outer.is::<Ping>());
    }

    #[test]
    fn payloads_compare_and_serialize_as_their_values() {
        let p = Payload::new(Ping(3));
        assert_eq!(p.clone(), p);
        assert_ne!(p, Payload::new(Pong(3)));
        assert_eq!(serde_json::to_string(&p).unwrap(), "3");
        let mut json = Vec::new();
        p.value().write_json(&mut json);
        assert_eq!(json, b"3");
        assert_eq!(
            p.value().write_binary(Vec::new()),
            postcard::to_stdvec(&Ping(3)).unwrap()
        );
    }
}
