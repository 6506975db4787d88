//! Canonical JSON (compact, object keys sorted at every level) written straight from a
//! value's `Serialize` impl, without building a `serde_json::Value` tree first.
//!
//! [`write`] gives the same bytes as `serde_json::to_value` followed by
//! [`super::write_canonical`] (property-tested below): each scalar is written as the `Value`
//! that `to_value` makes of it (so an `f32` is widened as there, a non-finite float is `null`),
//! map keys as JSON strings, each object's entries sorted by key bytes. Where the two could
//! differ it refuses instead ([`Refused`]): a map key that is not text or an integer, a key
//! given twice in one object, serde_json's raw values, 128-bit integers. The caller then takes
//! the tree path.

use serde::ser::{self, Serialize};
use serde_json::Value;
use std::borrow::Cow;

/// The value has a shape this writer leaves to the tree path (see the module docs).
#[derive(Debug)]
pub struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Refused(msg.to_string())
    }
}

fn refuse<T>(what: &str) -> Result<T, Refused> {
    Err(Refused(what.to_string()))
}

/// Appends the canonical JSON of `value` to `out`, leaving out the keys in `skip` of the
/// top-level object. On `Err`, `out` holds a partial text and is to be discarded.
///
/// Errors: [`Refused`] for the shapes named in the module docs.
pub fn write<T: Serialize + ?Sized>(
    value: &T,
    skip: &[&str],
    out: &mut Vec<u8>,
) -> Result<(), Refused> {
    value.serialize(Canonical { out, skip })
}

/// The name serde_json gives its raw values' serialization.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// `fn $method(self, v: $ty)` writing `v` as the `Value` that `to_value` makes of it.
macro_rules! scalars {
    ($($method:ident : $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<(), Refused> {
            self.scalar(Value::from(v))
        }
    )*};
}

/// `fn $method(self, v: $ty)` giving an integer map key as its decimal text.
macro_rules! integer_keys {
    ($($method:ident : $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<String, Refused> {
            Ok(v.to_string())
        }
    )*};
}

/// `fn $method(self, _: $ty)` refusing a map key of that type.
macro_rules! keys_not_text {
    ($($method:ident : $ty:ty),*) => {$(
        fn $method(self, _: $ty) -> Result<String, Refused> {
            refuse("a map key that is not text")
        }
    )*};
}

/// Writes one value; `skip` applies to the object it is, if it is one.
struct Canonical<'a> {
    out: &'a mut Vec<u8>,
    skip: &'a [&'a str],
}

impl<'a> Canonical<'a> {
    fn scalar(self, v: Value) -> Result<(), Refused> {
        serde_json::to_writer(&mut *self.out, &v).map_err(|e| Refused(e.to_string()))
    }

    fn text(self, s: &str) -> Result<(), Refused> {
        super::json_string::push(self.out, s);
        Ok(())
    }

    fn seq(self, close: &'static [u8]) -> Seq<'a> {
        self.out.push(b'[');
        Seq {
            out: self.out,
            first: true,
            close,
        }
    }

    fn object(self, close: &'static [u8]) -> Object<'a> {
        Object {
            start: self.out.len(),
            out: self.out,
            skip: self.skip,
            entries: Vec::with_capacity(8),
            key: None,
            close,
        }
    }

    /// Starts `{"variant":` (`to_value`'s shape of a newtype, tuple or struct variant).
    fn variant(self, variant: &str) -> Result<Canonical<'a>, Refused> {
        if self.skip.contains(&variant) {
            return refuse("a skipped key as an enum variant");
        }
        self.out.push(b'{');
        super::json_string::push(self.out, variant);
        self.out.push(b':');
        Ok(Canonical {
            out: self.out,
            skip: &[],
        })
    }
}

impl<'a> ser::Serializer for Canonical<'a> {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    // Each written as the `Value` that `to_value` makes of it.
    scalars!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_f32: f32,
        serialize_f64: f64
    );
    fn serialize_i128(self, _: i128) -> Result<(), Refused> {
        refuse("a 128-bit integer")
    }
    fn serialize_u128(self, _: u128) -> Result<(), Refused> {
        refuse("a 128-bit integer")
    }
    fn serialize_char(self, v: char) -> Result<(), Refused> {
        self.text(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Refused> {
        self.text(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Refused> {
        let mut seq = self.seq(b"]");
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<(), Refused> {
        self.scalar(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Refused> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Refused> {
        self.scalar(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Refused> {
        self.scalar(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Refused> {
        self.text(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        if name == RAW_VALUE_TOKEN {
            return refuse("a raw JSON value");
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        let out = self.variant(variant)?.out;
        value.serialize(Canonical {
            out: &mut *out,
            skip: &[],
        })?;
        out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>, Refused> {
        Ok(self.seq(b"]"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Seq<'a>, Refused> {
        Ok(self.seq(b"]"))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Seq<'a>, Refused> {
        Ok(self.seq(b"]"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, Refused> {
        Ok(self.variant(variant)?.seq(b"]}"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a>, Refused> {
        Ok(self.object(b"}"))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Object<'a>, Refused> {
        if name == RAW_VALUE_TOKEN {
            return refuse("a raw JSON value");
        }
        Ok(self.object(b"}"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Object<'a>, Refused> {
        Ok(self.variant(variant)?.object(b"}}"))
    }
}

/// An array being written; `close` ends it (`]`, or `]}` for a tuple variant).
struct Seq<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    close: &'static [u8],
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(Canonical {
            out: &mut *self.out,
            skip: &[],
        })
    }

    fn finish(self) -> Result<(), Refused> {
        self.out.extend_from_slice(self.close);
        Ok(())
    }
}

/// The four array-like serde traits, each writing its elements with [`Seq::element`].
macro_rules! seq_traits {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = Refused;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
                self.element(value)
            }
            fn end(self) -> Result<(), Refused> {
                self.finish()
            }
        }
    )*};
}

seq_traits!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// An object being collected: each entry's value is written at the end of `out` as it
/// comes (from `start` on), and the entries are put in key order when the object ends.
/// `close` ends it (`}`, or `}}` for a struct variant). Field names are borrowed, so an
/// object costs two allocations (its entries and, at the end, its values' text), not two per
/// entry.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    /// Where this object's text begins in `out`.
    start: usize,
    skip: &'a [&'a str],
    /// Each entry's key and where its value's text lies in `out`.
    entries: Vec<(Cow<'static, str>, std::ops::Range<usize>)>,
    key: Option<String>,
    close: &'static [u8],
}

impl Object<'_> {
    fn entry<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Refused> {
        if self.skip.contains(&key.as_ref()) {
            return Ok(());
        }
        let from = self.out.len();
        value.serialize(Canonical {
            out: &mut *self.out,
            skip: &[],
        })?;
        self.entries.push((key, from..self.out.len()));
        Ok(())
    }

    fn finish(mut self) -> Result<(), Refused> {
        self.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if self.entries.windows(2).any(|w| w[0].0 == w[1].0) {
            return refuse("a key given twice in one object");
        }
        let values = self.out.split_off(self.start);
        self.out.push(b'{');
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            super::json_string::push(self.out, k);
            self.out.push(b':');
            let range = (v.start - self.start)..(v.end - self.start);
            self.out
                .extend_from_slice(values.get(range).unwrap_or_default());
        }
        self.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Refused> {
        self.key = Some(key.serialize(KeyText)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        let Some(key) = self.key.take() else {
            return refuse("a map value without its key");
        };
        self.entry(Cow::Owned(key), value)
    }
    fn end(self) -> Result<(), Refused> {
        self.finish()
    }
}

/// The two struct-like serde traits: each field is an entry keyed by its name.
macro_rules! struct_traits {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Object<'_> {
            type Ok = ();
            type Error = Refused;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Refused> {
                self.entry(Cow::Borrowed(key), value)
            }
            fn end(self) -> Result<(), Refused> {
                self.finish()
            }
        }
    )*};
}

struct_traits!(SerializeStruct, SerializeStructVariant);

/// A map key as the text `to_value` makes of it: strings, chars, unit variants and integers;
/// anything else is refused.
struct KeyText;

impl ser::Serializer for KeyText {
    type Ok = String;
    type Error = Refused;
    type SerializeSeq = ser::Impossible<String, Refused>;
    type SerializeTuple = ser::Impossible<String, Refused>;
    type SerializeTupleStruct = ser::Impossible<String, Refused>;
    type SerializeTupleVariant = ser::Impossible<String, Refused>;
    type SerializeMap = ser::Impossible<String, Refused>;
    type SerializeStruct = ser::Impossible<String, Refused>;
    type SerializeStructVariant = ser::Impossible<String, Refused>;

    fn serialize_str(self, v: &str) -> Result<String, Refused> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, Refused> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, Refused> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, Refused> {
        value.serialize(self)
    }
    integer_keys!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64
    );
    keys_not_text!(
        serialize_bool: bool,
        serialize_f32: f32,
        serialize_f64: f64,
        serialize_bytes: &[u8]
    );
    fn serialize_none(self) -> Result<String, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_unit(self) -> Result<String, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Refused> {
        refuse("a map key that is not text")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Refused> {
        refuse("a map key that is not text")
    }
}

#[cfg(test)]
#[path = "canonical_tests.rs"]
mod tests;
