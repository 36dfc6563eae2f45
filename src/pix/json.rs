//! One-pass JSON object scanning without a `serde_json::Value` tree.
//!
//! An object is read into a fixed table of slots, one per field name the wire format defines;
//! each slot keeps the field's value as raw JSON text borrowed from the input (`&RawValue`).
//! Interpreting a value (string, number, nested object) is left to the caller, which knows what
//! type the field must have and can report `WRONG_TYPE` with the field's path. Names outside the
//! table are kept, in order, for `_rescued_data`; a name seen twice is remembered for
//! `DUPLICATE_FIELD`.
//!
//! Nothing here allocates for a well-formed object whose names are all known and whose strings
//! have no escapes: slots live on the stack and strings borrow from the input.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Most fields any object of the wire format has (a refund's `data` has 10; participants 6).
pub const MAX_FIELDS: usize = 24;

/// The fields of one JSON object, slotted by a list of known names.
pub struct RawObject<'a> {
    slots: [Option<&'a RawValue>; MAX_FIELDS],
    /// Fields whose names are not in the list, in input order.
    pub unknown: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// The first known name that appeared twice.
    pub duplicate: Option<&'static str>,
}

impl<'a> RawObject<'a> {
    /// The raw value of the field at `index` in the name list; `None` when absent. A JSON `null`
    /// is returned as is (the caller decides whether null means absent).
    pub fn get(&self, index: usize) -> Option<&'a RawValue> {
        self.slots[index]
    }

    /// Parses a whole message value as an object over `names`.
    pub fn parse_message(bytes: &'a [u8], names: &'static [&'static str]) -> Result<Self, ScanError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let obj = ObjectSeed { names }
            .deserialize(&mut de)
            .map_err(|e| classify_error(bytes, e))?;
        de.end().map_err(|e| ScanError::Malformed(e.to_string()))?;
        Ok(obj)
    }

    /// Parses a nested value (already known to be valid JSON) as an object over `names`.
    pub fn parse_nested(raw: &'a RawValue, names: &'static [&'static str]) -> Result<Self, JsonKind> {
        let kind = kind_of(raw);
        if kind != JsonKind::Object {
            return Err(kind);
        }
        let mut de = serde_json::Deserializer::from_str(raw.get());
        // The text was validated when the enclosing object was scanned: this cannot fail.
        ObjectSeed { names }.deserialize(&mut de).map_err(|_| JsonKind::Object)
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
        Some(b'[') | Some(b'"') | Some(b't') | Some(b'f') | Some(b'n') | Some(b'-') | Some(b'0'..=b'9')
            if serde_json::from_slice::<de::IgnoredAny>(bytes).is_ok() =>
        {
            ScanError::NotAnObject(match first_byte(bytes) {
                Some(b'[') => JsonKind::Array,
                Some(b'"') => JsonKind::String,
                Some(b't') | Some(b'f') => JsonKind::Bool,
                Some(b'n') => JsonKind::Null,
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
    names: &'static [&'static str],
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
        let mut obj = RawObject {
            slots: [None; MAX_FIELDS],
            unknown: Vec::new(),
            duplicate: None,
        };
        while let Some(key) = map.next_key_seed(KeySeed { names: self.names })? {
            let value: &'de RawValue = map.next_value()?;
            match key {
                Key::Known(i) => {
                    if obj.slots[i].is_some() && obj.duplicate.is_none() {
                        obj.duplicate = Some(self.names[i]);
                    }
                    obj.slots[i] = Some(value);
                }
                Key::Unknown(name) => obj.unknown.push((name, value)),
            }
        }
        Ok(obj)
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

    const NAMES: &[&str] = &["a", "b", "c"];

    #[test]
    fn slots_known_and_keeps_unknown() {
        let o = RawObject::parse_message(br#"{"b": 1, "x": [1,2], "a": "s"}"#, NAMES).unwrap();
        assert_eq!(o.get(0).unwrap().get(), r#""s""#);
        assert_eq!(o.get(1).unwrap().get(), "1");
        assert!(o.get(2).is_none());
        assert_eq!(o.unknown.len(), 1);
        assert_eq!(o.unknown[0].0, "x");
        assert_eq!(o.unknown[0].1.get(), "[1,2]");
        assert!(o.duplicate.is_none());
    }

    #[test]
    fn reports_duplicates() {
        let o = RawObject::parse_message(br#"{"a":1,"a":2}"#, NAMES).unwrap();
        assert_eq!(o.duplicate, Some("a"));
    }

    #[test]
    fn not_objects_and_garbage() {
        assert_eq!(
            RawObject::parse_message(b"[1]", NAMES).err(),
            Some(ScanError::NotAnObject(JsonKind::Array))
        );
        assert_eq!(
            RawObject::parse_message(b" 12 ", NAMES).err(),
            Some(ScanError::NotAnObject(JsonKind::Number))
        );
        assert!(matches!(
            RawObject::parse_message(b"{\"a\":", NAMES),
            Err(ScanError::Malformed(_))
        ));
        assert!(matches!(
            RawObject::parse_message(b"{} x", NAMES),
            Err(ScanError::Malformed(_))
        ));
        assert!(matches!(
            RawObject::parse_message(b"{\"a\":\"\xff\"}", NAMES),
            Err(ScanError::Malformed(_))
        ));
        assert!(matches!(
            RawObject::parse_message(b"", NAMES),
            Err(ScanError::Malformed(_))
        ));
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let o = RawObject::parse_message(br#"{"a":"plain","b":"tab\tand \u00e9"}"#, NAMES).unwrap();
        assert!(matches!(as_str(o.get(0).unwrap()), Some(Cow::Borrowed("plain"))));
        assert_eq!(as_str(o.get(1).unwrap()).unwrap(), "tab\tand é");
        let n = RawObject::parse_message(br#"{"a":5}"#, NAMES).unwrap();
        assert!(as_str(n.get(0).unwrap()).is_none());
        assert_eq!(kind_of(n.get(0).unwrap()), JsonKind::Number);
    }

    #[test]
    fn escaped_keys_match() {
        let o = RawObject::parse_message(br#"{"\u0061":true}"#, NAMES).unwrap();
        assert_eq!(o.get(0).unwrap().get(), "true");
    }

    #[test]
    fn nested_objects() {
        let o = RawObject::parse_message(br#"{"a":{"b":"x"},"c":"y"}"#, NAMES).unwrap();
        let inner = RawObject::parse_nested(o.get(0).unwrap(), NAMES).unwrap();
        assert_eq!(inner.get(1).unwrap().get(), r#""x""#);
        assert_eq!(
            RawObject::parse_nested(o.get(2).unwrap(), NAMES).err(),
            Some(JsonKind::String)
        );
    }
}
