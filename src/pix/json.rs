//! One-pass JSON object scanning without a `serde_json::Value` tree.
//!
//! An object is read against a [`Spec`]: a fixed table of the field names the wire format
//! defines. Scalar fields keep their value as raw JSON text borrowed from the input ([`Raw`]);
//! interpreting it (string, number) is left to the caller, which knows the type the field must
//! have and can report `WRONG_TYPE` with the field's path. Fields the spec declares as nested
//! objects (`payer`, `payee`) are parsed in the same pass into child objects. Names outside the
//! table are kept, in order, for `_rescued_data`; a name seen twice is remembered for
//! `DUPLICATE_FIELD`.
//!
//! The root's `data` depends on `event_type`. Producers write the envelope first, so when
//! `event_type` has been seen by the time `data` arrives, `data` is parsed in the same pass with
//! its category's spec ([`Dynamic`]); otherwise it is kept raw and parsed afterwards.
//!
//! The scanner is hand-written because it is the hot path: the input's UTF-8 is checked once,
//! then one pass over the bytes validates the JSON grammar (RFC 8259, as strictly as
//! `serde_json`: a property test holds the two to the same verdicts) and slots the fields. A
//! well-formed message whose strings have no escapes costs one scan and one small allocation per
//! nested object.

use std::borrow::Cow;
use std::fmt;

use super::swar;

/// Most fields any object of the wire format has (a payment's `data` has 14); `object_spec!`
/// refuses to compile a longer spec.
pub const MAX_FIELDS: usize = 16;
/// Most nested objects one object has (`payer`, `payee`).
pub const MAX_NESTED: usize = 2;
/// Deepest nesting accepted (as `serde_json`'s recursion limit).
pub const MAX_DEPTH: usize = 128;

/// Whether `names` can be matched in place by the scanner: each non-empty, none repeated, none
/// holding a quote, a backslash or a control character (so the input bytes `"name"` are that
/// name's JSON string and nothing else). `object_spec!` checks every spec with it at compile time.
pub const fn plain_names(names: &[&str]) -> bool {
    let mut i = 0;
    while i < names.len() {
        let b = names[i].as_bytes();
        if b.is_empty() {
            return false;
        }
        let mut k = 0;
        while k < b.len() {
            if b[k] == b'"' || b[k] == b'\\' || b[k] < 0x20 {
                return false;
            }
            k += 1;
        }
        let mut j = 0;
        while j < i {
            let o = names[j].as_bytes();
            if o.len() == b.len() {
                let mut same = true;
                let mut k = 0;
                while k < b.len() {
                    same &= o[k] == b[k];
                    k += 1;
                }
                if same {
                    return false;
                }
            }
            j += 1;
        }
        i += 1;
    }
    true
}

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

/// The raw text of one JSON value, validated, borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw<'a> {
    text: &'a str,
    /// For strings: whether the text contains escapes (decoding then allocates).
    escaped: bool,
}

impl<'a> Raw<'a> {
    /// The JSON text (`"abc"`, `12.5`, `{…}`).
    #[inline]
    pub fn get(&self) -> &'a str {
        self.text
    }
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
    /// Raw texts by slot (kept as bare `&str`, with the escape flags in `escaped`, so the object
    /// stays small: it is allocated for every object of every message).
    slots: [Option<&'a str>; MAX_FIELDS],
    /// Bit `i`: slot `i` is a string with escapes.
    escaped: u32,
    nested: [Option<Nested<'a>>; MAX_NESTED],
    /// The dynamic field's value, when it was parsed in the same pass, with the spec used.
    dynamic: Option<(&'static Spec, Nested<'a>)>,
    /// Fields whose names are not in the spec, in input order.
    pub unknown: Vec<(Cow<'a, str>, Raw<'a>)>,
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
    #[inline]
    pub fn get(&self, index: usize) -> Option<Raw<'a>> {
        self.slots[index].map(|text| Raw { text, escaped: self.escaped & (1 << index) != 0 })
    }

    /// Takes the nested object at field `index`, parsing it now if it was kept raw.
    /// `Err(kind)` when the field is present but not an object; `Ok(None)` when absent or null.
    pub fn take_nested(&mut self, index: usize, spec: &'static Spec) -> Result<Option<Box<RawObject<'a>>>, JsonKind> {
        if let Some(pos) = self.spec.nested.iter().position(|(i, _)| *i == index) {
            return unwrap_nested(self.nested[pos].take());
        }
        if let Some((used, value)) = self.dynamic.take() {
            if std::ptr::eq(used, spec) {
                return unwrap_nested(Some(value));
            }
            // Parsed with another category's spec: cannot happen, the selector is the same
            // field the caller resolved; refuse rather than misread.
            return Err(JsonKind::Object);
        }
        match self.get(index) {
            None => Ok(None),
            Some(raw) if raw.text == "null" => Ok(None),
            Some(raw) => RawObject::parse_nested(raw, spec).map(Some),
        }
    }

    /// Parses a whole message value as an object of `spec`.
    pub fn parse_message(
        bytes: &'a [u8],
        spec: &'static Spec,
        dynamic: Option<&'static Dynamic>,
    ) -> Result<Box<Self>, ScanError> {
        // SIMD validation first; std's only to say where a bad value goes wrong.
        let text = match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => std::str::from_utf8(bytes).map_err(|e| {
                ScanError::Malformed(format!("invalid UTF-8 at byte {}: the value must be UTF-8 JSON", e.valid_up_to()))
            })?,
        };
        let mut sc = Scanner { s: text, b: bytes, pos: 0 };
        sc.ws();
        if sc.peek() != Some(b'{') {
            let start = sc.pos;
            return match sc.value(0).and_then(|_| sc.end()) {
                Ok(()) => Err(ScanError::NotAnObject(kind_of_byte(bytes[start]))),
                Err(e) => Err(ScanError::Malformed(e.to_string())),
            };
        }
        let obj = sc.object(spec, dynamic, 1).map_err(|e| ScanError::Malformed(e.to_string()))?;
        sc.end().map_err(|e| ScanError::Malformed(e.to_string()))?;
        Ok(obj)
    }

    /// Parses a nested value (already validated as JSON) as an object of `spec`.
    pub fn parse_nested(raw: Raw<'a>, spec: &'static Spec) -> Result<Box<Self>, JsonKind> {
        let kind = kind_of(raw);
        if kind != JsonKind::Object {
            return Err(kind);
        }
        let mut sc = Scanner { s: raw.text, b: raw.text.as_bytes(), pos: 0 };
        // The text was validated when the enclosing object was scanned: this cannot fail.
        sc.object(spec, None, 1).map_err(|_| JsonKind::Object)
    }
}

fn unwrap_nested(n: Option<Nested<'_>>) -> Result<Option<Box<RawObject<'_>>>, JsonKind> {
    match n {
        None | Some(Nested::NotObject(JsonKind::Null)) => Ok(None),
        Some(Nested::NotObject(kind)) => Err(kind),
        Some(Nested::Object(o)) => Ok(Some(o)),
    }
}

/// Why a message is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// Not UTF-8, not JSON, or trailing characters; what and where.
    Malformed(String),
    /// Valid JSON but not an object; says what it is instead.
    NotAnObject(JsonKind),
}

/// A grammar error: what was expected and at which byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError {
    /// What the scanner expected or found.
    pub what: &'static str,
    /// Byte offset in the value.
    pub at: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
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

fn kind_of_byte(b: u8) -> JsonKind {
    match b {
        b'"' => JsonKind::String,
        b'{' => JsonKind::Object,
        b'[' => JsonKind::Array,
        b't' | b'f' => JsonKind::Bool,
        b'n' => JsonKind::Null,
        _ => JsonKind::Number,
    }
}

/// The type of a raw value, from its first character.
pub fn kind_of(raw: Raw<'_>) -> JsonKind {
    raw.text.as_bytes().first().map_or(JsonKind::Null, |b| kind_of_byte(*b))
}

/// The decoded text of a raw JSON string, borrowed when it has no escapes; `None` if the value is
/// not a string.
#[inline]
pub fn as_str(raw: Raw<'_>) -> Option<Cow<'_, str>> {
    let inner = body(raw.text)?;
    Some(if raw.escaped { Cow::Owned(unescape(inner)) } else { Cow::Borrowed(inner) })
}

/// The body of a raw JSON string that has no escapes, borrowed; `None` for an escaped string or
/// a value of another kind (then [`as_str`] says which).
#[inline]
pub fn plain_str(raw: Raw<'_>) -> Option<&str> {
    if raw.escaped { None } else { body(raw.text) }
}

/// What is between the quotes of a JSON string's text; `None` for another kind of value.
#[inline]
fn body(text: &str) -> Option<&str> {
    text.strip_prefix('"')?.strip_suffix('"')
}

/// Decodes the escapes of a string body the scanner validated.
fn unescape(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex = |chars: &mut std::str::Chars<'_>| {
                    let h: String = chars.by_ref().take(4).collect();
                    u32::from_str_radix(&h, 16).unwrap_or(0xfffd)
                };
                let hi = hex(&mut chars);
                let code = if (0xd800..0xdc00).contains(&hi) {
                    // The scanner checked a low surrogate follows.
                    chars.next();
                    chars.next();
                    let lo = hex(&mut chars);
                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                } else {
                    hi
                };
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other), // \" \\ \/
            None => {}
        }
    }
    out
}

/// The first index at or after `pos` holding `"`, `\\` or a control character (or the end):
/// sixteen bytes at a time with SSE2 on x86-64 (every x86-64 processor has it, and the
/// `target_feature` the path is compiled under says this target may use it: no detection),
/// then eight at a time in a `u64` ([`swar`]), then one.
#[inline]
fn skip_plain(b: &[u8], mut pos: usize) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(chunk) = b.get(pos..).and_then(<[u8]>::first_chunk) {
        let mask = special16(chunk);
        if mask != 0 {
            return pos + mask.trailing_zeros() as usize;
        }
        pos += 16;
    }
    while let Some(chunk) = b.get(pos..).and_then(<[u8]>::first_chunk) {
        let w = swar::word(chunk);
        let mask = swar::bytes_equal(w, b'"') | swar::bytes_equal(w, b'\\') | swar::bytes_below(w, 0x20);
        if mask != 0 {
            return pos + (mask.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&c) = b.get(pos) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        pos += 1;
    }
    pos
}

/// Bit `i` set when byte `i` of the 16 is `"`, `\\` or below 0x20.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn special16(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: this is compiled only where the target enables SSE2 (the x86-64 baseline), so its
    // intrinsics run on every processor the binary runs on; the load reads the 16 bytes of
    // `chunk`, and `loadu` has no alignment requirement.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `v <= 0x1f` is `max(v, 0x1f) == 0x1f`.
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// `a == b` for two slices of the same length, inline: names are a few bytes long, and the
/// library `memcmp` call `==` compiles to cost more than the comparison (2.5–3.5 % of the
/// decode benchmark's samples). Eight bytes at a time, the last word overlapping the one before.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| s.get(i..i + 8).map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// A cursor over validated UTF-8 input.
struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

type Scan<T> = Result<T, SyntaxError>;

impl<'a> Scanner<'a> {
    fn err<T>(&self, what: &'static str) -> Scan<T> {
        Err(SyntaxError { what, at: self.pos })
    }

    /// The input from `start` to the cursor: a value just scanned.
    #[inline]
    fn text_from(&self, start: usize) -> &'a str {
        debug_assert!(start <= self.pos && self.s.is_char_boundary(start) && self.s.is_char_boundary(self.pos));
        // SAFETY: a value's first byte and its last byte are ASCII (the grammar: a quote, bracket
        // or brace, a sign or digit, a letter of `true`, `false`, `null`), so `start` and the
        // index just past the last byte, `self.pos`, are character boundaries of the UTF-8 text
        // (whatever byte follows); and `start <= self.pos <= len`, because the cursor only moves
        // forward, over bytes it has read. Only successful scans call this.
        // (Checked slicing cost two boundary tests per value, ~2 % of decoding.)
        unsafe { self.s.get_unchecked(start..self.pos) }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn end(&mut self) -> Scan<()> {
        self.ws();
        if self.pos == self.b.len() { Ok(()) } else { self.err("trailing characters after the JSON value") }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Scan<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// An object of `spec`; the cursor is on `{`. Built in its box (it is large: moving it
    /// showed in profiles).
    fn object(
        &mut self,
        spec: &'static Spec,
        dynamic: Option<&'static Dynamic>,
        depth: usize,
    ) -> Scan<Box<RawObject<'a>>> {
        if depth > MAX_DEPTH {
            return self.err("nesting deeper than 128 levels");
        }
        self.pos += 1;
        let mut obj = Box::write(
            Box::new_uninit(),
            RawObject {
                spec,
                slots: [None; MAX_FIELDS],
                escaped: 0,
                nested: [None, None],
                dynamic: None,
                unknown: Vec::new(),
                duplicate: None,
            },
        );
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(obj);
        }
        let mut seen: u32 = 0;
        // Producers write fields in a stable order, usually the spec's: look there first.
        let mut hint = 0;
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return self.err("expected a field name in double quotes");
            }
            // The expected name, compared in place: spec names are plain ASCII (no quote,
            // backslash or control character), so the input bytes equal to it and followed by
            // a quote are that name's JSON string — no scan, no decoding.
            // The hint first, then every spec name, in place.
            let known = match spec.names.get(hint) {
                Some(n) if self.at_key(n) => Some((hint, n.len())),
                _ => spec.names.iter().position(|n| self.at_key(n)).map(|i| (i, spec.names[i].len())),
            };
            let found = match known {
                Some((i, n)) => {
                    self.pos += n + 2;
                    hint = i + 1;
                    Ok(i)
                }
                // Not a spec name, or one written with escapes.
                None => {
                    let name = as_str(self.string()?).unwrap_or_default();
                    spec.names.iter().position(|n| *n == name).ok_or(name)
                }
            };
            // Compact JSON has the colon right after the name, and the value right after it.
            if self.peek() == Some(b':') {
                self.pos += 1;
            } else {
                self.expect(b':', "expected ':' after the field name")?;
            }
            self.ws();
            match found {
                Err(name) => {
                    let value = self.value(depth)?;
                    obj.unknown.push((name, value));
                }
                Ok(i) => {
                    if seen & (1 << i) != 0 && obj.duplicate.is_none() {
                        obj.duplicate = Some(spec.names[i]);
                    }
                    seen |= 1 << i;
                    if let Some(pos) = spec.nested.iter().position(|(n, _)| *n == i) {
                        obj.nested[pos] = Some(self.nested(spec.nested[pos].1, depth)?);
                    } else if let Some(d) = dynamic
                        && d.field == i
                        && let Some(chosen) = obj.get(d.selector).and_then(as_str).and_then(|s| (d.resolve)(s.trim()))
                    {
                        obj.dynamic = Some((chosen, self.nested(chosen, depth)?));
                    } else {
                        let raw = self.value(depth)?;
                        obj.slots[i] = Some(raw.text);
                        if raw.escaped {
                            obj.escaped |= 1 << i;
                        }
                    }
                }
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(obj);
                }
                _ => return self.err("expected ',' or '}' in an object"),
            }
        }
    }

    /// Whether the cursor (on a quote) is at the JSON string `"name"`, for a spec name.
    #[inline]
    fn at_key(&self, name: &str) -> bool {
        debug_assert!(plain_names(&[name]), "spec name {name:?} cannot be matched in place");
        let (n, name) = (name.len(), name.as_bytes());
        // First character and the closing quote before the comparison: most names differ there.
        self.b.get(self.pos + 1) == name.first()
            && self.b.get(self.pos + 1 + n) == Some(&b'"')
            && self.b.get(self.pos + 1..self.pos + 1 + n).is_some_and(|k| same_short(k, name))
    }

    /// A value that should be an object of `spec`.
    fn nested(&mut self, spec: &'static Spec, depth: usize) -> Scan<Nested<'a>> {
        if self.peek() == Some(b'{') {
            return Ok(Nested::Object(self.object(spec, None, depth + 1)?));
        }
        let raw = self.value(depth)?;
        Ok(Nested::NotObject(kind_of(raw)))
    }

    /// Any value; returns its text. The cursor is on its first byte.
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Scan<Raw<'a>> {
        let start = self.pos;
        let escaped = match self.peek() {
            Some(b'"') => return self.string(),
            Some(b'{') => {
                self.skip_container(b'}', depth + 1)?;
                false
            }
            Some(b'[') => {
                self.skip_container(b']', depth + 1)?;
                false
            }
            Some(b't') => self.literal("true")?,
            Some(b'f') => self.literal("false")?,
            Some(b'n') => self.literal("null")?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            None => return self.err("unexpected end of input, expected a value"),
            _ => return self.err("expected a JSON value"),
        };
        Ok(Raw { text: self.text_from(start), escaped })
    }

    fn literal(&mut self, word: &'static str) -> Scan<bool> {
        if self.b[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(false)
        } else {
            self.err("expected true, false or null")
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Scan<bool> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.err("invalid number: digits expected after '.'");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.err("invalid number: digits expected in the exponent");
            }
        }
        Ok(false)
    }

    /// A string; the cursor is on the opening quote. Checks escapes (including surrogate pairs)
    /// and refuses raw control characters, as RFC 8259 requires. Inline for the string without
    /// escapes (almost every value: the call cost more than the scan of a short string).
    #[inline(always)]
    fn string(&mut self) -> Scan<Raw<'a>> {
        let start = self.pos;
        let end = skip_plain(self.b, start + 1);
        if self.b.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Ok(Raw { text: self.text_from(start), escaped: false });
        }
        self.pos = end;
        self.string_rest(start)
    }

    /// The rest of a string that [`Self::string`] found to hold an escape or a control character
    /// (or no end), from the cursor there; `start` is its opening quote.
    #[inline(never)]
    fn string_rest(&mut self, start: usize) -> Scan<Raw<'a>> {
        let mut escaped = false;
        loop {
            self.pos = skip_plain(self.b, self.pos);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Raw { text: self.text_from(start), escaped });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                        Some(b'u') => {
                            self.pos += 1;
                            let cp = self.hex4()?;
                            if (0xdc00..0xe000).contains(&cp) {
                                return self.err("lone trailing surrogate in a \\u escape");
                            }
                            if (0xd800..0xdc00).contains(&cp) {
                                if !self.b[self.pos..].starts_with(b"\\u") {
                                    return self.err("lone leading surrogate in a \\u escape");
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return self.err("lone leading surrogate in a \\u escape");
                                }
                            }
                        }
                        _ => return self.err("invalid escape in a string"),
                    }
                }
                Some(_) => return self.err("control character in a string: escape it"),
                None => return self.err("unterminated string"),
            }
        }
    }

    fn hex4(&mut self) -> Scan<u32> {
        let Some(h) = self.b.get(self.pos..self.pos + 4) else {
            return self.err("truncated \\u escape");
        };
        let mut v = 0u32;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return self.err("invalid hexadecimal digit in a \\u escape"),
            };
            v = v * 16 + u32::from(d);
        }
        self.pos += 4;
        Ok(v)
    }

    /// Skips an array or object whose opening bracket is under the cursor, validating it.
    fn skip_container(&mut self, close: u8, depth: usize) -> Scan<()> {
        if depth > MAX_DEPTH {
            return self.err("nesting deeper than 128 levels");
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if close == b'}' {
                if self.peek() != Some(b'"') {
                    return self.err("expected a field name in double quotes");
                }
                self.string()?;
                self.expect(b':', "expected ':' after the field name")?;
                self.ws();
            }
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    return self.err(if close == b'}' {
                        "expected ',' or '}' in an object"
                    } else {
                        "expected ',' or ']' in an array"
                    });
                }
            }
        }
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

    /// Names of every length matched in place: each found when written exactly, and never when
    /// one of its bytes, or its length, differs; with the input ending right after the value
    /// and with whitespace after it.
    #[test]
    fn names_of_every_length_are_matched_exactly() {
        const NAMES: [&str; 7] = ["a", "abcdef", "abcdefg", "abcdefgh", "abcdefghijklmno", "ab", "abcdefghijklmnop"];
        static LONG: Spec = Spec { names: &NAMES, paths: &NAMES, path: "", nested: &[] };
        for (i, name) in NAMES.iter().enumerate() {
            for tail in ["", "                 "] {
                let text = format!(r#"{{"{name}":1{tail}}}"#);
                let o = RawObject::parse_message(text.as_bytes(), &LONG, None).unwrap();
                assert_eq!(o.get(i).map(|r| r.get()), Some("1"), "{text}");
                assert!(o.unknown.is_empty(), "{text}");
                // One byte changed, one added, one removed: not this name.
                let mut variants: Vec<String> = (0..name.len())
                    .map(|k| name.char_indices().map(|(j, c)| if j == k { 'z' } else { c }).collect())
                    .collect();
                variants.push(format!("{name}q"));
                variants.push(name[..name.len() - 1].to_string());
                for v in variants {
                    let text = format!(r#"{{"{v}":1{tail}}}"#);
                    let o = RawObject::parse_message(text.as_bytes(), &LONG, None).unwrap();
                    assert_eq!(o.get(i), None, "{text} matched {name}");
                    let expected = usize::from(!NAMES.contains(&v.as_str()));
                    assert_eq!(o.unknown.len(), expected, "{text}");
                }
            }
        }
    }

    /// The string scan (SSE2, then eight bytes, then one) stops where a byte-by-byte search
    /// does, for every length, start and position of every kind of byte it must or must not see.
    #[test]
    fn skip_plain_stops_at_the_first_special_byte() {
        let reference = |b: &[u8], pos: usize| {
            (pos..b.len()).find(|&i| b[i] == b'"' || b[i] == b'\\' || b[i] < 0x20).unwrap_or(b.len())
        };
        for len in 0..48 {
            for at in 0..=len {
                for byte in [0x00, 0x1f, 0x20, b'"', b'\\', b'a', 0x7f, 0x80, 0xc3, 0xff] {
                    let mut b = vec![b'x'; len];
                    if at < len {
                        b[at] = byte;
                    }
                    for pos in [0, 1, 7, 8, 15, 16, 17].into_iter().filter(|&p| p <= len) {
                        assert_eq!(
                            skip_plain(&b, pos),
                            reference(&b, pos),
                            "len {len}, byte {byte:#x} at {at}, from {pos}"
                        );
                    }
                }
            }
        }
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
    fn names_matched_in_place_only_when_whole() {
        // Longer or shorter than a spec name, out of order, or escaped: still told apart.
        let o = RawObject::parse_message(br#"{"bb":1,"c":2,"":3,"b\"":4,"b":5,"a\u0062":6}"#, &PLAIN, None).unwrap();
        assert_eq!(o.get(1).unwrap().get(), "5");
        assert_eq!(o.get(2).unwrap().get(), "2");
        assert!(o.get(0).is_none());
        let names: Vec<&str> = o.unknown.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, ["bb", "", "b\"", "ab"]);
        assert!(o.duplicate.is_none());
    }

    #[test]
    fn duplicates_across_plain_and_escaped_spellings() {
        for text in [&br#"{"b":1,"\u0062":2}"#[..], br#"{"\u0062":1,"b":2}"#] {
            let o = RawObject::parse_message(text, &PLAIN, None).unwrap();
            assert_eq!(o.duplicate, Some("b"), "{}", String::from_utf8_lossy(text));
            assert_eq!(o.get(1).unwrap().get(), "2");
        }
    }

    #[test]
    fn short_comparison_agrees_with_slices() {
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for n in 0..24 {
            for at in 0..8 {
                let a = &text[at..at + n];
                for i in 0..n {
                    let mut b = a.to_vec();
                    b[i] ^= 0x20;
                    assert!(!same_short(a, &b), "{n} {at} {i}");
                }
                let copy = a.to_owned();
                assert!(same_short(a, &copy));
                assert!(!same_short(a, &text[at..at + n + 1]));
            }
        }
    }

    #[test]
    fn spec_names_must_be_plain() {
        assert!(plain_names(&["event_id", "data", "a"]));
        for bad in [&["a\"b"][..], &["a\\b"], &[""], &["tab\t"], &["x", "y", "x"]] {
            assert!(!plain_names(bad), "{bad:?}");
        }
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

    mod agreement {
        use super::*;
        use proptest::prelude::*;

        /// serde_json's verdict when it decodes everything (UTF-8 and escapes included; its
        /// `IgnoredAny` path skips those checks): Ok(true) an object, Ok(false) another kind.
        fn serde_verdict(b: &[u8]) -> Result<bool, ()> {
            serde_json::from_slice::<serde_json::Value>(b).map_err(|_| ()).map(|v| v.is_object())
        }

        /// serde_json refuses numbers beyond f64 (`1e309`); the grammar, and pixlake, do not
        /// (amounts are read from their text). Such inputs are left out of the comparison.
        fn comparable(b: &[u8]) -> bool {
            serde_json::from_slice::<serde_json::Value>(b).err().is_none_or(|e| !e.to_string().contains("out of range"))
        }

        fn ours(b: &[u8]) -> Result<bool, ()> {
            match RawObject::parse_message(b, &SPEC, None) {
                Ok(_) => Ok(true),
                Err(ScanError::NotAnObject(_)) => Ok(false),
                Err(ScanError::Malformed(_)) => Err(()),
            }
        }

        fn json_text() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                any::<i64>().prop_map(|i| i.to_string()),
                any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| serde_json::to_string(&f).unwrap()),
                any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
                Just(r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00""#.to_owned()),
            ];
            leaf.prop_recursive(4, 40, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
                    prop::collection::vec(
                        (prop_oneof![Just("a".to_owned()), Just("b".to_owned()), "[a-z]{1,3}"], inner),
                        0..5
                    )
                    .prop_map(|v| format!(
                        "{{{}}}",
                        v.iter().map(|(k, v)| format!("{k:?}: {v}")).collect::<Vec<_>>().join(" , ")
                    )),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn same_verdict_as_serde_json_on_valid_json(text in json_text()) {
                prop_assume!(comparable(text.as_bytes()));
                prop_assert_eq!(ours(text.as_bytes()), serde_verdict(text.as_bytes()), "{}", text);
            }

            #[test]
            fn same_verdict_as_serde_json_on_damaged_json(
                text in json_text(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()
            ) {
                let mut b = format!("{{\"a\":{text}}}").into_bytes();
                let i = at.index(b.len());
                if cut { b.truncate(i) } else { b[i] = byte }
                prop_assume!(comparable(&b));
                prop_assert_eq!(ours(&b), serde_verdict(&b), "{}", String::from_utf8_lossy(&b));
            }

            #[test]
            fn same_verdict_as_serde_json_on_bytes(b in prop::collection::vec(prop_oneof![
                Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b':'), Just(b','), Just(b'\\'),
                Just(b'u'), Just(b'1'), Just(b'-'), Just(b'e'), Just(b'.'), Just(b' '), Just(b'a'), any::<u8>()
            ], 0..40)) {
                prop_assert_eq!(ours(&b), serde_verdict(&b), "{}", String::from_utf8_lossy(&b));
            }

            #[test]
            fn strings_decode_as_serde_json_does(s in any::<String>()) {
                let text = format!("{{\"b\":{}}}", serde_json::to_string(&s).unwrap());
                let o = RawObject::parse_message(text.as_bytes(), &SPEC, None).unwrap();
                prop_assert_eq!(as_str(o.get(1).unwrap()).unwrap(), s);
            }
        }

        #[test]
        fn escapes_and_surrogates() {
            for (text, ok) in [
                (r#"{"b":"\ud83d\ude00"}"#, true),
                (r#"{"b":"\ud83d"}"#, false),
                (r#"{"b":"\ude00"}"#, false),
                (r#"{"b":"\u12"}"#, false),
                (r#"{"b":"\x41"}"#, false),
                ("{\"b\":\"tab\there\"}", false),
            ] {
                assert_eq!(ours(text.as_bytes()).is_ok(), ok, "{text}");
                assert_eq!(serde_verdict(text.as_bytes()).is_ok(), ok, "serde: {text}");
            }
            let o = RawObject::parse_message(r#"{"b":"\ud83d\ude00 \u00e9\n"}"#.as_bytes(), &SPEC, None).unwrap();
            assert_eq!(as_str(o.get(1).unwrap()).unwrap(), "😀 é\n");
        }

        #[test]
        fn depth_limit() {
            let deep = format!("{{\"b\":{}{}}}", "[".repeat(200), "]".repeat(200));
            assert!(ours(deep.as_bytes()).is_err());
            let ok = format!("{{\"b\":{}{}}}", "[".repeat(100), "]".repeat(100));
            assert!(ours(ok.as_bytes()).is_ok());
        }
    }
}
