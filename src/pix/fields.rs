//! Typed reading of a scanned JSON object: each accessor knows the field's path, so every
//! `MISSING_FIELD` / `WRONG_TYPE` / format rejection names it (`data.payer.document`).

use std::borrow::Cow;
use std::fmt::Write as _;

use super::codes::Code;
use super::json::{self, JsonKind, Raw, RawObject};

use super::rules::{Flags, HardRule, Rejection, SoftRule};

pub use super::json::Spec;

/// Declares a [`Spec`] and one index constant per field; `=> OTHER` marks a nested object:
/// `object_spec!(pub DATA = "data" { AMOUNT = "amount", PAYER = "payer" => PAYER_SPEC });`
macro_rules! object_spec {
    ($vis:vis $spec:ident = $prefix:tt { $($field:ident = $name:literal $(=> $child:path)?),* $(,)? }) => {
        const _: () = assert!([$($name),*].len() <= $crate::pix::json::MAX_FIELDS, "too many fields for one object");
        const _: () = assert!(
            $crate::pix::json::plain_names(&[$($name),*]),
            "field names must be non-empty, distinct, without quotes, backslashes or control characters"
        );
        $vis static $spec: $crate::pix::fields::Spec = $crate::pix::fields::Spec {
            names: &[$($name),*],
            paths: &[$($crate::pix::fields::object_spec!(@path $prefix, $name)),*],
            path: $prefix,
            nested: &[$($(($spec::$field, &$child),)?)*],
        };
        #[allow(non_snake_case, dead_code)]
        $vis mod $spec {
            #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
            enum Index { $($field),* }
            $(pub const $field: usize = Index::$field as usize;)*
        }
    };
    (@path "", $name:literal) => { $name };
    (@path $prefix:tt, $name:literal) => { concat!($prefix, ".", $name) };
}
pub(crate) use object_spec;

/// A scanned object (which knows its spec) with typed, path-aware accessors.
pub struct Obj<'a> {
    raw: Box<RawObject<'a>>,
}

impl<'a> Obj<'a> {
    /// Wraps a scanned object; rejects it if it repeats a field.
    pub fn new(raw: Box<RawObject<'a>>) -> Result<Self, Rejection> {
        let spec = raw.spec();
        if let Some(name) = raw.duplicate {
            let i = spec.names.iter().position(|n| *n == name).unwrap_or(0);
            return Err(Rejection::new(
                HardRule::DuplicateField,
                spec.paths[i],
                "the field appears more than once; send it once",
            ));
        }
        Ok(Obj { raw })
    }

    /// The dotted path of field `f`.
    pub fn path(&self, f: usize) -> &'static str {
        self.raw.spec().paths[f]
    }

    /// The raw value of `f`; JSON `null` counts as absent.
    #[inline]
    pub fn raw(&self, f: usize) -> Option<Raw<'a>> {
        // A raw value starting with `n` can only be `null`: no string comparison needed.
        self.raw.get(f).filter(|r| !r.get().starts_with('n'))
    }

    /// Appends this object's unknown fields to `out` as `"path":value` members of a JSON object.
    pub fn rescue_into(&self, out: &mut String) {
        for (name, value) in &self.raw.unknown {
            out.push(if out.is_empty() { '{' } else { ',' });
            let path = self.raw.spec().path;
            let key = if path.is_empty() { Cow::Borrowed(name.as_ref()) } else { Cow::Owned(format!("{path}.{name}")) };
            // A String always serializes.
            let _ = write!(out, "{}:{}", serde_json::to_string(key.as_ref()).unwrap_or_default(), value.get());
        }
    }

    /// A rejection of field `f`.
    pub fn reject(&self, rule: HardRule, f: usize, message: impl Into<String>) -> Rejection {
        Rejection::new(rule, self.path(f), message)
    }

    fn missing(&self, f: usize) -> Rejection {
        self.reject(HardRule::MissingField, f, "required field is missing, null or empty")
    }

    fn wrong_type(&self, f: usize, expected: &str, found: JsonKind) -> Rejection {
        self.reject(HardRule::WrongType, f, format!("expected {expected}, found {found}"))
    }

    /// An optional string, whitespace trimmed (flagged); an empty string counts as absent.
    #[inline]
    pub fn opt_str(&self, f: usize, flags: &mut Flags) -> Result<Option<Cow<'a, str>>, Rejection> {
        let Some(raw) = self.raw(f) else {
            return Ok(None);
        };
        // Almost every value: a string without escapes, handled as a `&str` and wrapped once
        // (moving the `Cow` between the steps went through the stack and stalled on it).
        if let Some(s) = json::plain_str(raw) {
            let s = trim_str(s, flags);
            return Ok(if s.is_empty() { None } else { Some(Cow::Borrowed(s)) });
        }
        let s = json::as_str(raw).ok_or_else(|| self.wrong_type(f, "a string", json::kind_of(raw)))?;
        let s = trim(s, flags);
        Ok(if s.is_empty() { None } else { Some(s) })
    }

    /// A required non-empty string, whitespace trimmed (flagged).
    #[inline]
    pub fn req_str(&self, f: usize, flags: &mut Flags) -> Result<Cow<'a, str>, Rejection> {
        self.opt_str(f, flags)?.ok_or_else(|| self.missing(f))
    }

    /// An optional string of at most `max` characters.
    pub fn opt_text(&self, f: usize, max: usize, flags: &mut Flags) -> Result<Option<Cow<'a, str>>, Rejection> {
        let s = self.opt_str(f, flags)?;
        // Characters never outnumber bytes: count them only when the bytes could be too many.
        if let Some(s) = s.as_ref().filter(|s| s.len() > max) {
            let n = s.chars().count();
            if n > max {
                return Err(self.reject(HardRule::InvalidLength, f, format!("{n} characters, at most {max} allowed")));
            }
        }
        Ok(s)
    }

    /// A required coded value.
    pub fn req_code<C: Code>(&self, f: usize, flags: &mut Flags) -> Result<C, Rejection> {
        let s = self.req_str(f, flags)?;
        self.code(f, &s, flags)
    }

    /// An optional coded value.
    pub fn opt_code<C: Code>(&self, f: usize, flags: &mut Flags) -> Result<Option<C>, Rejection> {
        match self.opt_str(f, flags)? {
            Some(s) => self.code(f, &s, flags).map(Some),
            None => Ok(None),
        }
    }

    fn code<C: Code>(&self, f: usize, s: &str, flags: &mut Flags) -> Result<C, Rejection> {
        C::parse(s, flags).ok_or_else(|| {
            self.reject(HardRule::InvalidEnum, f, format!("not an allowed value; use one of {}", C::allowed()))
        })
    }

    /// A required nested object.
    pub fn req_object(&mut self, f: usize, spec: &'static Spec) -> Result<Obj<'a>, Rejection> {
        match self.raw.take_nested(f, spec) {
            Ok(Some(obj)) => Obj::new(obj),
            Ok(None) => Err(self.missing(f)),
            Err(kind) => Err(self.wrong_type(f, "an object", kind)),
        }
    }

    /// A required RFC 3339 timestamp, as UTC microseconds.
    pub fn req_time(&self, f: usize, flags: &mut Flags) -> Result<i64, Rejection> {
        let s = self.req_str(f, flags)?;
        super::time::parse_rfc3339(&s).map_err(|e| self.reject(HardRule::InvalidTimestamp, f, e.message()))
    }

    /// An optional RFC 3339 timestamp.
    pub fn opt_time(&self, f: usize, flags: &mut Flags) -> Result<Option<i64>, Rejection> {
        match self.opt_str(f, flags)? {
            Some(s) => super::time::parse_rfc3339(&s)
                .map(Some)
                .map_err(|e| self.reject(HardRule::InvalidTimestamp, f, e.message())),
            None => Ok(None),
        }
    }

    /// A required amount in centavos: a decimal string, or a JSON number converted exactly.
    pub fn req_amount(&self, f: usize, flags: &mut Flags) -> Result<i64, Rejection> {
        let raw = self.raw(f).ok_or_else(|| self.missing(f))?;
        let result = match json::kind_of(raw) {
            JsonKind::String => {
                let s = json::as_str(raw).unwrap_or_default();
                super::amount::parse_decimal_str(&trim(s, flags))
            }
            JsonKind::Number => {
                flags.insert(SoftRule::AmountFromNumber);
                super::amount::parse_json_number(raw.get())
            }
            other => return Err(self.wrong_type(f, "a decimal string such as \"1234.50\"", other)),
        };
        result.map_err(|e| self.reject(HardRule::InvalidAmount, f, e.message()))
    }

    /// The raw JSON kind of field `f`, if present.
    pub fn kind(&self, f: usize) -> Option<JsonKind> {
        self.raw(f).map(json::kind_of)
    }
}

/// Trims surrounding whitespace, flagging `WHITESPACE_TRIMMED`; borrows when possible.
///
/// The check is inlined and the trimming out of line: called, `trim` returned its `Cow` through
/// the stack and the caller's wider reload of it stalled on the store (a third of `opt_str`'s
/// samples); [`Obj::opt_str`] now works on the `&str` of an unescaped string and wraps it once.
#[inline(always)]
pub fn trim<'a>(s: Cow<'a, str>, flags: &mut Flags) -> Cow<'a, str> {
    if !needs_trim(&s) {
        return s;
    }
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(trim_ends(b, flags)),
        Cow::Owned(o) => {
            let t = trim_ends(&o, flags);
            if t.len() == o.len() { Cow::Owned(o) } else { Cow::Owned(t.to_owned()) }
        }
    }
}

/// [`trim`] of a borrowed string.
#[inline(always)]
fn trim_str<'a>(s: &'a str, flags: &mut Flags) -> &'a str {
    if needs_trim(s) { trim_ends(s, flags) } else { s }
}

/// Whether an end of `s` may be whitespace: false for almost every value (both ends printable
/// ASCII). Anything below `!` goes the slow way, which `str::trim` decides: it trims the
/// vertical tab too, which `u8::is_ascii_whitespace` does not count.
#[inline(always)]
fn needs_trim(s: &str) -> bool {
    let plain = |c: &u8| (b'!'..0x80).contains(c);
    let b = s.as_bytes();
    !(b.first().is_none_or(plain) && b.last().is_none_or(plain))
}

#[cold]
#[inline(never)]
fn trim_ends<'a>(s: &'a str, flags: &mut Flags) -> &'a str {
    let t = s.trim();
    if t.len() != s.len() {
        flags.insert(SoftRule::WhitespaceTrimmed);
    }
    t
}
