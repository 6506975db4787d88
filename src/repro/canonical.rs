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
        serde_json::to_writer(&mut *self.out, s).map_err(|e| Refused(e.to_string()))
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
            out: self.out,
            skip: self.skip,
            entries: Vec::new(),
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
        serde_json::to_writer(&mut *self.out, variant).map_err(|e| Refused(e.to_string()))?;
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

/// An object being collected: each entry's value is written to its own buffer, and the
/// entries are sorted by key when the object ends. `close` ends it (`}`, or `}}` for a
/// struct variant).
struct Object<'a> {
    out: &'a mut Vec<u8>,
    skip: &'a [&'a str],
    entries: Vec<(String, Vec<u8>)>,
    key: Option<String>,
    close: &'static [u8],
}

impl Object<'_> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<(), Refused> {
        if self.skip.contains(&key.as_str()) {
            return Ok(());
        }
        let mut buf = Vec::new();
        value.serialize(Canonical {
            out: &mut buf,
            skip: &[],
        })?;
        self.entries.push((key, buf));
        Ok(())
    }

    fn finish(mut self) -> Result<(), Refused> {
        self.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if self.entries.windows(2).any(|w| w[0].0 == w[1].0) {
            return refuse("a key given twice in one object");
        }
        self.out.push(b'{');
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            serde_json::to_writer(&mut *self.out, k).map_err(|e| Refused(e.to_string()))?;
            self.out.push(b':');
            self.out.extend_from_slice(v);
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
        self.entry(key, value)
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
                self.entry(key.to_string(), value)
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The tree path: `to_value`, then the canonical text of the tree.
    fn by_tree<T: Serialize>(v: &T, skip: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        super::super::write_canonical(&serde_json::to_value(v).unwrap(), skip, &mut out);
        out
    }

    fn direct<T: Serialize>(v: &T, skip: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        write(v, skip, &mut out).unwrap();
        out
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z\"\\\\\u{0}-\u{1f}é😀]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::vec(("[a-dzé_\"]{0,3}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any JSON value: the same bytes as the tree path, with and without skipped keys.
        #[test]
        fn same_bytes_as_the_tree_path(v in json()) {
            prop_assert_eq!(direct(&v, &[]), by_tree(&v, &[]));
            let skip = ["a", "stream", "b"];
            prop_assert_eq!(direct(&v, &skip), by_tree(&v, &skip));
        }

        /// A chat request made of any JSON object that parses as one (typed fields, options,
        /// floats such as `temperature`, the flattened extra fields).
        #[test]
        fn same_bytes_for_chat_requests(extra in proptest::collection::vec(("[a-z_]{1,12}", json()), 0..5),
                                         temperature in proptest::option::of(any::<f64>()),
                                         stream in any::<bool>()) {
            let mut obj = serde_json::Map::new();
            obj.insert("model".into(), "m".into());
            obj.insert("messages".into(), serde_json::json!([{"role":"user","content":"hi"}]));
            obj.insert("stream".into(), stream.into());
            if let Some(t) = temperature.filter(|t| t.is_finite()) {
                obj.insert("temperature".into(), t.into());
            }
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
            let bytes = serde_json::to_vec(&Value::Object(obj)).unwrap();
            if let Ok(req) = crate::api::parse_body::<crate::api::ChatCompletionRequest>(&bytes) {
                let skip = ["model", "stream", "stream_options"];
                prop_assert_eq!(direct(&req, &skip), by_tree(&req, &skip));
            }
        }
    }

    #[test]
    fn f32_is_widened_as_to_value_does() {
        assert_eq!(direct(&0.1f32, &[]), by_tree(&0.1f32, &[]));
        assert_eq!(direct(&f64::NAN, &[]), b"null");
    }

    #[test]
    fn refuses_what_the_tree_path_would_write_otherwise() {
        let raw = serde_json::value::RawValue::from_string("{\"b\":1,\"a\":2}".into()).unwrap();
        assert!(write(&raw, &[], &mut Vec::new()).is_err());
        let mut twice = std::collections::BTreeMap::new();
        twice.insert("x", 1);
        #[derive(serde::Serialize)]
        struct Dup {
            x: u8,
            #[serde(flatten)]
            rest: std::collections::BTreeMap<&'static str, u8>,
        }
        let dup = Dup { x: 0, rest: twice };
        assert!(write(&dup, &[], &mut Vec::new()).is_err());
        assert!(write(&u128::MAX, &[], &mut Vec::new()).is_err());
    }

    #[test]
    fn enums_take_to_values_shapes() {
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(u8),
            Tuple(u8, &'static str),
            Struct { b: u8, a: u8 },
        }
        for e in [
            E::Unit,
            E::New(1),
            E::Tuple(1, "x"),
            E::Struct { b: 1, a: 2 },
        ] {
            assert_eq!(direct(&e, &[]), by_tree(&e, &[]));
        }
        assert_eq!(
            direct(&E::Struct { b: 1, a: 2 }, &[]),
            br#"{"Struct":{"a":2,"b":1}}"#
        );
    }
}
