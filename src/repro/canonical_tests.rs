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
