//! One-pass JSON object scanning without a `serde_json::Value` tree.
//!
//! An object is read against a [`Spec`]: a fixed table of the field names the wire format
//! defines. Scalar fields keep their value as raw JSON text borrowed from the input
//! (`&RawValue`); interpreting it (string, number) is left to the caller, which knows the type the
//! field must have and can report `WRONG_TYPE` with the field's path. Fields the spec declares as
//! nested objects (`payer`, `payee`) are parsed in the same pass into child objects. Names outside
//! the table are kept, in order, for `_rescued_data`; a name seen twice is remembered for
//! `DUPLICATE_FIELD`.
//!
//! The root's `data` depends on `event_type`. Producers write the envelope first, so when
//! `event_type` has been seen by the time `data` arrives, `data` is parsed in the same pass with
//! its category's spec ([`Dynamic`]); otherwise it is kept raw and parsed afterwards.
//!
//! A well-formed message whose strings have no escapes costs one scan of the input and one small
//! allocation per nested object.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Most fields any object of the wire format has (a payment's `data` has 14).
pub const MAX_FIELDS: usize = 24;
/// Most nested objects one object has (`payer`, `payee`).
pub const MAX_NESTED: usize = 2;

/// The fields of one object of the wire format: names as they appear in JSON, their dotted paths
/// from the message root, and which of them are nested objects. Built by `object_spec!`.
pub struct Spec {
    /// JSON names, slot order.
    pub names: &'static [&'static str],
    /// Dotted paths, same order.
    pub paths: &'static [&'static str],
    /// Path of the object itself ("" for the root).
    pub path: &'static str,
    /// `(slot, spec)` of the fields that are nested objects, at most [`MAX_NESTED`].
    pub nested: &'static [(usize, &'static Spec)],
}

/// A field whose spec is chosen by another field of the same object (the root's `data`, chosen
/// by `event_type`).
pub struct Dynamic {
    /// Slot of the dynamic field.
    pub field: usize,
    /// Slot of the field that selects its spec.
    pub selector: usize,
    /// The spec for a selector value.
    pub resolve: fn(&str) -> Option<&'static Spec>,
}

/// A nested object as scanned.
pub enum Nested<'a> {
    /// It was an object.
    Object(Box<RawObject<'a>>),
    /// It was something else (for `WRONG_TYPE`; `Null` counts as absent).
    NotObject(JsonKind),
}

/// The fields of one JSON object, slotted by its spec.
pub struct RawObject<'a> {
    spec: &'static Spec,
    slots: [Option<&'a RawValue>; MAX_FIELDS],
    nested: [Option<Nested<'a>>; MAX_NESTED],
    /// The dynamic field's value, when it was parsed in the same pass, with the spec used.
    dynamic: Option<(&'static Spec, Nested<'a>)>,
    /// Fields whose names are not in the spec, in input order.
    pub unknown: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// The first name that appeared twice.
    pub duplicate: Option<&'static str>,
}

impl<'a> RawObject<'a> {
    /// The spec this object was read with.
    pub fn spec(&self) -> &'static Spec {
        self.spec
    }

    /// The raw value of the scalar field at `index`; `None` when absent. A JSON `null` is
    /// returned as is (the caller decides whether null means absent).
    pub fn get(&self, index: usize) -> Option<&'a RawValue> {
        self.slots[index]
    }

    /// Takes the nested object at field `index`, parsing it now if it was kept raw.
    /// `Err(kind)` when the field is present but not an object; `Ok(None)` when absent or null.
    pub fn take_nested(&mut self, index: usize, spec: &'static Spec) -> Result<Option<RawObject<'a>>, JsonKind> {
        if let Some(pos) = self.spec.nested.iter().position(|(i, _)| *i == index) {
            return match self.nested[pos].take() {
                None | Some(Nested::NotObject(JsonKind::Null)) => Ok(None),
                Some(Nested::NotObject(kind)) => Err(kind),
                Some(Nested::Object(o)) => Ok(Some(*o)),
            };
        }
        if let Some((used, value)) = self.dynamic.take() {
            if std::ptr::eq(used, spec) {
                return match value {
                    Nested::NotObject(JsonKind::Null) => Ok(None),
                    Nested::NotObject(kind) => Err(kind),
                    Nested::Object(o) => Ok(Some(*o)),
                };
            }
            // Parsed with another category's spec: cannot happen, the selector is the same
            // field the caller resolved; refuse rather than misread.
            return Err(JsonKind::Object);
        }
        match self.slots[index] {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => RawObject::parse_nested(raw, spec).map(Some),
        }
    }

    /// Parses a whole message value as an object of `spec`.
    pub fn parse_message(
        bytes: &'a [u8],
        spec: &'static Spec,
        dynamic: Option<&'static Dynamic>,
    ) -> Result<Self, ScanError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let obj = ObjectSeed { spec, dynamic }.deserialize(&mut de).map_err(|e| classify_error(bytes, e))?;
        de.end().map_err(|e| ScanError::Malformed(e.to_string()))?;
        Ok(obj)
    }

    /// Parses a nested value (already known to be valid JSON) as an object of `spec`.
    pub fn parse_nested(raw: &'a RawValue, spec: &'static Spec) -> Result<Self, JsonKind> {
        let kind = kind_of(raw);
        if kind != JsonKind::Object {
            return Err(kind);
        }
        let mut de = serde_json::Deserializer::from_str(raw.get());
        // The text was validated when the enclosing object was scanned: this cannot fail.
        ObjectSeed { spec, dynamic: None }.deserialize(&mut de).map_err(|_| JsonKind::Object)
    }
}

/// Why a message is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// Not UTF-8, not JSON, or trailing characters; the parser's message (position included).
    Malformed(String),
    /// Valid JSON but not an object; says what it is instead.
    NotAnObject(JsonKind),
}

fn classify_error(bytes: &[u8], e: serde_json::Error) -> ScanError {
    // Distinguish "valid JSON, wrong kind" from "not JSON" for a better message.
    match first_byte(bytes) {
        Some(b) if b != b'{' && serde_json::from_slice::<de::IgnoredAny>(bytes).is_ok() => {
            ScanError::NotAnObject(match b {
                b'[' => JsonKind::Array,
                b'"' => JsonKind::String,
                b't' | b'f' => JsonKind::Bool,
                b'n' => JsonKind::Null,
                _ => JsonKind::Number,
            })
        }
        _ => ScanError::Malformed(e.to_string()),
    }
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// The JSON type of a value, for `WRONG_TYPE` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonKind {
    String,
    Number,
    Bool,
    Null,
    Object,
    Array,
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::String => "a string",
            JsonKind::Number => "a number",
            JsonKind::Bool => "a boolean",
            JsonKind::Null => "null",
            JsonKind::Object => "an object",
            JsonKind::Array => "an array",
        })
    }
}

/// The type of a raw value, from its first character (raw values carry no surrounding space).
pub fn kind_of(raw: &RawValue) -> JsonKind {
    match raw.get().as_bytes().first() {
        Some(b'"') => JsonKind::String,
        Some(b'{') => JsonKind::Object,
        Some(b'[') => JsonKind::Array,
        Some(b't') | Some(b'f') => JsonKind::Bool,
        Some(b'n') => JsonKind::Null,
        _ => JsonKind::Number,
    }
}

/// The decoded text of a raw JSON string, borrowed when it has no escapes; `None` if the value is
/// not a string.
pub fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    let inner = &text[1..text.len() - 1];
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    // Escapes: let serde_json decode them (rare; allocates).
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

struct ObjectSeed {
    spec: &'static Spec,
    dynamic: Option<&'static Dynamic>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = RawObject<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = RawObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let spec = self.spec;
        let mut obj = RawObject {
            spec,
            slots: [None; MAX_FIELDS],
            nested: [None, None],
            dynamic: None,
            unknown: Vec::new(),
            duplicate: None,
        };
        let mut seen: u32 = 0;
        while let Some(key) = map.next_key_seed(KeySeed { names: spec.names })? {
            let i = match key {
                Key::Known(i) => i,
                Key::Unknown(name) => {
                    obj.unknown.push((name, map.next_value()?));
                    continue;
                }
            };
            if seen & (1 << i) != 0 && obj.duplicate.is_none() {
                obj.duplicate = Some(spec.names[i]);
            }
            seen |= 1 << i;
            if let Some(pos) = spec.nested.iter().position(|(n, _)| *n == i) {
                obj.nested[pos] = Some(map.next_value_seed(NestedSeed { spec: spec.nested[pos].1 })?);
                continue;
            }
            if let Some(d) = self.dynamic
                && d.field == i
                && let Some(chosen) = obj.slots[d.selector].and_then(as_str).and_then(|s| (d.resolve)(s.trim()))
            {
                obj.dynamic = Some((chosen, map.next_value_seed(NestedSeed { spec: chosen })?));
                continue;
            }
            obj.slots[i] = Some(map.next_value()?);
        }
        Ok(obj)
    }
}

/// Parses a value that should be an object of `spec`, recording its kind when it is not.
struct NestedSeed {
    spec: &'static Spec,
}

impl<'de> DeserializeSeed<'de> for NestedSeed {
    type Value = Nested<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NestedSeed {
    type Value = Nested<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let obj = ObjectSeed { spec: self.spec, dynamic: None }.visit_map(map)?;
        Ok(Nested::Object(Box::new(obj)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Nested::NotObject(JsonKind::Array))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Nested::NotObject(JsonKind::String))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Nested::NotObject(JsonKind::Bool))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Nested::NotObject(JsonKind::Number))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Nested::NotObject(JsonKind::Number))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Nested::NotObject(JsonKind::Number))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Nested::NotObject(JsonKind::Null))
    }
}

enum Key<'de> {
    Known(usize),
    Unknown(Cow<'de, str>),
}

struct KeySeed {
    names: &'static [&'static str],
}

impl KeySeed {
    fn lookup<'de>(&self, name: Cow<'de, str>) -> Key<'de> {
        match self.names.iter().position(|n| *n == name) {
            Some(i) => Key::Known(i),
            None => Key::Unknown(name),
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.lookup(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.lookup(Cow::Owned(v.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static INNER: Spec = Spec { names: &["x"], paths: &["a.x"], path: "a", nested: &[] };
    static SPEC: Spec = Spec { names: &["a", "b", "c"], paths: &["a", "b", "c"], path: "", nested: &[(0, &INNER)] };
    static PLAIN: Spec = Spec { names: &["a", "b", "c"], paths: &["a", "b", "c"], path: "", nested: &[] };

    #[test]
    fn slots_known_and_keeps_unknown() {
        let o = RawObject::parse_message(br#"{"b": 1, "x": [1,2], "c": "s"}"#, &SPEC, None).unwrap();
        assert_eq!(o.get(2).unwrap().get(), r#""s""#);
        assert_eq!(o.get(1).unwrap().get(), "1");
        assert_eq!(o.unknown.len(), 1);
        assert_eq!(o.unknown[0].0, "x");
        assert_eq!(o.unknown[0].1.get(), "[1,2]");
        assert!(o.duplicate.is_none());
    }

    #[test]
    fn reports_duplicates() {
        let o = RawObject::parse_message(br#"{"b":1,"b":2}"#, &SPEC, None).unwrap();
        assert_eq!(o.duplicate, Some("b"));
        let o = RawObject::parse_message(br#"{"a":{},"a":{}}"#, &SPEC, None).unwrap();
        assert_eq!(o.duplicate, Some("a"));
    }

    #[test]
    fn not_objects_and_garbage() {
        let parse = |b: &'static [u8]| RawObject::parse_message(b, &SPEC, None).err();
        assert_eq!(parse(b"[1]"), Some(ScanError::NotAnObject(JsonKind::Array)));
        assert_eq!(parse(b" 12 "), Some(ScanError::NotAnObject(JsonKind::Number)));
        for bad in [&b"{\"a\":"[..], b"{} x", b"{\"b\":\"\xff\"}", b"", b"{\"a\":{\"x\":}}"] {
            assert!(matches!(parse(bad), Some(ScanError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let o = RawObject::parse_message(br#"{"b":"plain","c":"tab\tand \u00e9"}"#, &SPEC, None).unwrap();
        assert!(matches!(as_str(o.get(1).unwrap()), Some(Cow::Borrowed("plain"))));
        assert_eq!(as_str(o.get(2).unwrap()).unwrap(), "tab\tand é");
        let n = RawObject::parse_message(br#"{"b":5}"#, &SPEC, None).unwrap();
        assert!(as_str(n.get(1).unwrap()).is_none());
        assert_eq!(kind_of(n.get(1).unwrap()), JsonKind::Number);
    }

    #[test]
    fn escaped_keys_match() {
        let o = RawObject::parse_message(br#"{"\u0062":true}"#, &SPEC, None).unwrap();
        assert_eq!(o.get(1).unwrap().get(), "true");
    }

    #[test]
    fn nested_objects_in_one_pass_or_from_raw() {
        let mut o = RawObject::parse_message(br#"{"a":{"x":"1"},"c":"y"}"#, &SPEC, None).unwrap();
        let inner = o.take_nested(0, &INNER).unwrap().unwrap();
        assert_eq!(inner.get(0).unwrap().get(), r#""1""#);
        let mut o = RawObject::parse_message(br#"{"a":"nope"}"#, &SPEC, None).unwrap();
        assert_eq!(o.take_nested(0, &INNER).err(), Some(JsonKind::String));
        let mut o = RawObject::parse_message(br#"{"a":null}"#, &SPEC, None).unwrap();
        assert!(o.take_nested(0, &INNER).unwrap().is_none());
        // Without a nested declaration the value is kept raw and parsed on demand.
        let mut o = RawObject::parse_message(br#"{"a":{"x":2,"y":3}}"#, &PLAIN, None).unwrap();
        let inner = o.take_nested(0, &INNER).unwrap().unwrap();
        assert_eq!(inner.get(0).unwrap().get(), "2");
        assert_eq!(inner.unknown.len(), 1);
    }

    static DYN: Dynamic = Dynamic { field: 0, selector: 1, resolve: |s| (s == "inner").then_some(&INNER) };

    #[test]
    fn dynamic_field_after_or_before_its_selector() {
        let mut after = RawObject::parse_message(br#"{"b":"inner","a":{"x":1}}"#, &PLAIN, Some(&DYN)).unwrap();
        assert!(after.get(0).is_none(), "parsed in the same pass, not kept raw");
        assert_eq!(after.take_nested(0, &INNER).unwrap().unwrap().get(0).unwrap().get(), "1");
        let mut before = RawObject::parse_message(br#"{"a":{"x":1},"b":"inner"}"#, &PLAIN, Some(&DYN)).unwrap();
        assert!(before.get(0).is_some());
        assert_eq!(before.take_nested(0, &INNER).unwrap().unwrap().get(0).unwrap().get(), "1");
    }
}
