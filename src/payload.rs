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
//! itself, so a family's values appear in the trace exactly as its own `Serialize` writes them.
//! Both encodings are monomorphized per type ([`Payload::write_json`], [`Payload::write_binary`]):
//! one indirect call per value, not per field, on the hottest path of a run. Other serializers
//! (reports) go through `erased_serde`.

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use smallbox::SmallBox;
use smallbox::space::S8;

/// A value a payload can hold: plain data that can be cloned, compared and serialized.
/// Implemented for every such type; families never implement it by hand.
pub trait Wire: Any + Send + Clone + fmt::Debug + PartialEq + Serialize {}

impl<T> Wire for T where T: Any + Send + Clone + fmt::Debug + PartialEq + Serialize {}

/// One erased value: a message, a timer payload or an observation. See the module docs.
///
/// Values of up to 64 bytes (most messages, every timer and observation of the built-in
/// families) are stored inline, without a heap allocation: a run creates one payload per
/// message, timer and observation, and allocating each cost about 8% of the Raft benchmark.
/// Larger values go to the heap.
pub struct Payload {
    value: SmallBox<dyn Any + Send, S8>,
    ops: &'static Ops,
}

/// What a payload can do with its value, monomorphized per type (one table per type, so the
/// trace's encodings cost one indirect call per value, not per field).
struct Ops {
    /// The value's type (a function: a `TypeId` constant needs Rust 1.91, past the MSRV).
    type_id: fn() -> TypeId,
    clone: fn(&dyn Any) -> Payload,
    eq: fn(&dyn Any, &dyn Any) -> bool,
    write_json: fn(&dyn Any, &mut Vec<u8>),
    write_binary: fn(&dyn Any, &mut Vec<u8>),
    debug: fn(&dyn Any, &mut fmt::Formatter<'_>) -> fmt::Result,
    serialize: fn(&dyn Any) -> &dyn erased_serde::Serialize,
    type_name: fn() -> &'static str,
}

/// The [`Ops`] of `T`.
struct OpsOf<T>(PhantomData<T>);

impl<T: Wire> OpsOf<T> {
    const OPS: Ops = Ops {
        type_id: TypeId::of::<T>,
        clone: |v| Payload::new(Self::get(v).clone()),
        eq: |a, b| b.downcast_ref::<T>() == Some(Self::get(a)),
        write_json: |v, out| serde_json::to_writer(out, Self::get(v)).expect("payloads serialize"),
        write_binary: |v, out| append_postcard(Self::get(v), out),
        debug: |v, f| fmt::Debug::fmt(Self::get(v), f),
        serialize: |v| Self::get(v),
        type_name: std::any::type_name::<T>,
    };

    /// The value of a payload whose table this is. Not checked (in release builds): checking
    /// called the value's `type_id` through its vtable, whose 16-byte result came back through
    /// the stack in two stores read with one wide load, a store-buffer stall on every trace
    /// record of a message (about 4% of the kernel ping-pong).
    #[inline(always)]
    fn get(value: &dyn Any) -> &T {
        debug_assert!(value.is::<T>(), "a payload's table matches its value");
        // SAFETY: `Payload::new` pairs every value with its own type's table and nothing else
        // builds a payload, so this table's functions are only ever handed a `T` (`eq`'s second
        // value, which may be anything, is checked by `downcast_ref`).
        unsafe { &*(value as *const dyn Any).cast::<T>() }
    }
}

/// The table of `T`, always at one address within this crate: not inlined, so every payload
/// this crate makes points at the one copy, and [`Payload::is`] can compare addresses before
/// it compares types (a promoted constant inlined into several codegen units may have several
/// copies; a payload made elsewhere still passes the type comparison).
#[inline(never)]
fn ops_of<T: Wire>() -> &'static Ops {
    &OpsOf::<T>::OPS
}

impl Payload {
    /// Wraps `value`. A `Payload` passed in is taken as it is, never wrapped twice.
    pub fn new<T: Wire>(value: T) -> Payload {
        if TypeId::of::<T>() == TypeId::of::<Payload>() {
            let mut slot = Some(value);
            let any: &mut dyn Any = &mut slot;
            return any
                .downcast_mut::<Option<Payload>>()
                .and_then(Option::take)
                .expect("the type was just compared");
        }
        Payload {
            value: smallbox::smallbox!(value),
            ops: ops_of::<T>(),
        }
    }

    /// The value if it is a `T`, else the payload back unchanged.
    #[inline]
    pub fn downcast<T: Wire>(self) -> Result<T, Payload> {
        if !self.is::<T>() {
            return Err(self);
        }
        let mut slot = Some(self);
        Ok(Payload::take_from::<T>(&mut slot).expect("the type was just compared"))
    }

    /// Moves the value out of the payload in `slot` if it is a `T`, leaving `None` there;
    /// otherwise (also if `slot` is empty) leaves `slot` as it is and returns `None`. Only the
    /// value is copied out, not the payload around it: the simulator hands a message to its
    /// handler this way, straight from where it waited.
    #[inline]
    pub fn take_from<T: Wire>(slot: &mut Option<Payload>) -> Option<T> {
        let payload = slot.as_ref()?;
        if !payload.is::<T>() {
            return None;
        }
        if payload.value.is_heap() {
            // A large value: let the box move it out and free its allocation.
            let payload = slot.take().expect("checked above");
            return match payload.value.downcast::<T>() {
                Ok(value) => Some(value.into_inner()),
                Err(_) => unreachable!("the type was just compared"),
            };
        }
        let value: *const (dyn Any + Send) = &*payload.value;
        // SAFETY: the payload holds a `T` (its table's `TypeId` is `T`'s: `Payload::new` pairs
        // every value with its own type's table, and nothing else builds a payload), stored
        // inline in the small box. Reading it moves the value out; the payload is then
        // overwritten with `None` without being dropped, so the value is not dropped twice, and
        // inline storage owns no allocation that could leak.
        unsafe {
            let value = std::ptr::read(value.cast::<T>());
            std::ptr::write(slot, None);
            Some(value)
        }
    }

    /// A reference to the value if it is a `T`.
    #[inline]
    pub fn downcast_ref<T: Wire>(&self) -> Option<&T> {
        if !self.is::<T>() {
            return None;
        }
        let value: *const (dyn Any + Send) = &*self.value;
        // SAFETY: the value is a `T` (see `take_from`), borrowed for as long as `self` is.
        Some(unsafe { &*value.cast::<T>() })
    }

    /// True if the value is a `T`. The table's address is compared first (see [`ops_of`]):
    /// the type comparison calls the table's `type_id`, whose result comes back through the
    /// stack (a store-buffer stall on every message delivered).
    #[inline]
    pub fn is<T: Wire>(&self) -> bool {
        std::ptr::eq(self.ops, ops_of::<T>()) || (self.ops.type_id)() == TypeId::of::<T>()
    }

    /// Appends the value's compact JSON to `out` (as its own `Serialize` writes it).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        (self.ops.write_json)(&*self.value, out);
    }

    /// Appends the value's postcard encoding to `out` (the trace hash's binary record).
    pub fn write_binary(&self, out: &mut Vec<u8>) {
        (self.ops.write_binary)(&*self.value, out);
    }

    /// The Rust type's name, for debugging.
    pub fn type_name(&self) -> &'static str {
        (self.ops.type_name)()
    }
}

/// Slices up to this long are appended byte by byte (see [`AppendTo`]).
const SHORT_BYTES: usize = 16;

/// postcard's output appended to a borrowed buffer: the bytes of `postcard::to_extend`, without
/// moving the buffer in and out of the serializer's result on every value.
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // Varints and short strings: a byte loop beats a call to `memcpy` for a few bytes.
        if data.len() <= SHORT_BYTES {
            let out = &mut *self.0;
            out.reserve(SHORT_BYTES);
            let len = out.len();
            // SAFETY: `reserve` left room for `SHORT_BYTES >= data.len()` bytes past `len`, all
            // written before the length covers them. The stores are volatile only so that the
            // loop stays a byte loop (the compiler would make it a call to `memcpy`, whose wide
            // loads stall on a source just written byte by byte, such as a varint's buffer);
            // one length update per slice instead of one per byte (`push`).
            unsafe {
                let end = out.as_mut_ptr().add(len);
                for (i, &b) in data.iter().enumerate() {
                    std::ptr::write_volatile(end.add(i), b);
                }
                out.set_len(len + data.len());
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value`'s postcard encoding to `out` (the trace's binary record of a value).
/// Panics if `value`'s `Serialize` fails (trace values are plain data; it never does).
pub(crate) fn append_postcard<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    postcard::serialize_with_flavor(value, AppendTo(out)).expect("trace values serialize");
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        (self.ops.clone)(&*self.value)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        (self.ops.eq)(&*self.value, &*other.value)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.ops.debug)(&*self.value, f)
    }
}

impl Serialize for Payload {
    /// Serializes the value itself, as its own `Serialize` does.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        erased_serde::serialize((self.ops.serialize)(&*self.value), serializer)
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
    fn a_value_is_taken_out_of_its_slot_only_as_its_own_type() {
        let mut slot = Some(Payload::new(Ping(7)));
        assert_eq!(Payload::take_from::<Pong>(&mut slot), None);
        assert!(slot.as_ref().is_some_and(|p| p.is::<Ping>()));
        assert_eq!(Payload::take_from::<Ping>(&mut slot), Some(Ping(7)));
        assert!(slot.is_none());
        assert_eq!(Payload::take_from::<Ping>(&mut slot), None);
        // Values that own memory come out whole, inline (a String) or boxed (over 64 bytes).
        let text = "x".repeat(100);
        let mut slot = Some(Payload::new(text.clone()));
        assert_eq!(Payload::take_from::<String>(&mut slot), Some(text.clone()));
        let big = (text.clone(), [7u64; 16]);
        let mut slot = Some(Payload::new(big.clone()));
        assert_eq!(
            Payload::take_from::<(String, [u64; 16])>(&mut slot),
            Some(big.clone())
        );
        assert!(slot.is_none());
        assert_eq!(
            Payload::new(big.clone())
                .downcast::<(String, [u64; 16])>()
                .ok(),
            Some(big)
        );
        assert_eq!(
            Payload::new(text.clone()).downcast_ref::<String>(),
            Some(&text)
        );
        assert_eq!(Payload::new(text).downcast_ref::<Ping>(), None);
    }

    proptest::proptest! {
        /// Appending writes exactly postcard's bytes after what the buffer held, whatever the
        /// lengths of the slices (varints, short and long strings, byte runs).
        #[test]
        fn appended_postcard_is_postcards_own_encoding(
            prefix in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            number in proptest::prelude::any::<u64>(),
            text in ".{0,40}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let value = (number, text, bytes, Some(number as i32));
            let mut out = prefix.clone();
            append_postcard(&value, &mut out);
            proptest::prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
            proptest::prop_assert_eq!(&out[prefix.len()..], &postcard::to_stdvec(&value).unwrap()[..]);
        }
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
        p.write_json(&mut json);
        assert_eq!(json, b"3");
        let mut binary = vec![9];
        p.write_binary(&mut binary);
        assert_eq!(binary[1..], postcard::to_stdvec(&Ping(3)).unwrap());
        let long = (u64::MAX, "x".repeat(300), vec![Pong(1); 3]);
        let mut appended = vec![9];
        append_postcard(&long, &mut appended);
        assert_eq!(appended[1..], postcard::to_stdvec(&long).unwrap());
    }
}
