//! Personal data out of log lines (LGPD): CPF and CNPJ numbers, the five kinds of Pix keys
//! (CPF, CNPJ, e-mail, phone, random EVP key) are replaced by a marker naming what was there.
//!
//! pixlake never puts a payload field into a log line on purpose (rejection messages name the
//! field, never its value); this is the second line of defence, applied to every line whatever
//! wrote it — pixlake, librdkafka, delta-rs. Names cannot be recognised in free text: they are
//! kept out by the first line alone.
//!
//! Masking errs on the side of hiding, but by context: pixlake's own identifiers look like
//! personal data (a UUID is an EVP key's shape, an 11-digit offset a CPF's), and an operator
//! whose write failed needs the file name. So a UUID or a digit run is kept when it is part of a
//! path or file name (`…/part-00000-<uuid>-c000.snappy.parquet`, `_delta_log/…`), or the value
//! of a key pixlake owns (`event_id=`, `"table_id":`, `offset=`, `offsets=0:…`, `version=`…).
//! Everywhere else — free text, payload fields, keys of their own (`pix_key`, `document`,
//! `device_id`) — it is masked. E-mails, phones and formatted CPF/CNPJ are masked in any context.

use std::borrow::Cow;

use regex::{Captures, Regex};

/// The masking patterns, compiled once per logger, and the configuration's secret values.
#[derive(Clone)]
pub struct Masker {
    pattern: Regex,
    /// The text just before a UUID that makes it one of pixlake's identifiers.
    id_key: Regex,
    /// The text just before a digit run that makes it one of pixlake's numbers.
    number_key: Regex,
    /// Exact strings replaced by `[REDACTED]`, longest first (as written, and as a JSON line
    /// writes them).
    secrets: Vec<String>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").field("secrets", &self.secrets.len()).finish()
    }
}

/// The alternatives, most specific first; each named group is the marker written instead.
/// Digit runs are matched whole (`DIGITS`) and judged by their length, so a CPF glued to a
/// letter (`cpf12345678909`) is found too; word boundaries guard only the alphanumeric CNPJ.
const PATTERN: &str = r"(?x)
    (?P<EMAIL>[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)
  | (?P<EVP>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
  | (?P<CNPJ>[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{3}/[0-9A-Z]{4}-[0-9]{2} | \b[0-9A-Z]{12}[0-9]{2}\b)
  | (?P<CPF>[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2})
  | (?P<PHONE>\+[0-9]{10,15} | \+55\s?\(?[0-9]{2}\)?\s?[0-9]{4,5}-?[0-9]{4})
  | (?P<DIGITS>[0-9]+)
";

const KINDS: [&str; 5] = ["EMAIL", "EVP", "CNPJ", "CPF", "PHONE"];

/// Keys whose UUID values are pixlake's (or Delta's) own identifiers, never a Pix key: the text
/// before the match ends with one of them and `=`/`:` (quotes and spaces allowed).
const ID_KEY: &str = r#"(?i)\b(?:event_id|table_id|operation_id|correlation_id|commit_id)["']?\s*[=:]\s*["']?$"#;

/// Keys whose digit values are offsets, versions and sizes: the text before the match ends with
/// one of them (then `=`, `:` or a space) and, for lists such as `offsets=0:123,1:456`, more of the list.
const NUMBER_KEY: &str = r#"(?i)\b(?:offsets?|versions?|position|high|low|watermarks?|ms|bytes|rows|records|partitions?)["']?\s*[=:]?\s*["']?[0-9:, ]*$"#;

/// How far back the context of a match is looked for.
const CONTEXT: usize = 48;

impl Default for Masker {
    fn default() -> Self {
        Self::new()
    }
}

impl Masker {
    /// Compiles the patterns.
    pub fn new() -> Self {
        Self::with_secrets(Vec::new())
    }

    /// Compiles the patterns; `secrets` (passwords, keys) are masked too, wherever they appear.
    pub fn with_secrets(secrets: Vec<String>) -> Self {
        // A constant pattern, covered by the tests below: it compiles.
        let compile = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("mask pattern: {e}"));
        let (pattern, id_key, number_key) = (compile(PATTERN), compile(ID_KEY), compile(NUMBER_KEY));
        let mut all: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        let escaped: Vec<String> =
            all.iter().filter_map(|s| serde_json::to_string(s).ok().map(|q| q[1..q.len() - 1].to_owned())).collect();
        all.extend(escaped);
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Masker { pattern, id_key, number_key, secrets: all }
    }

    /// `line` with every secret replaced by `[REDACTED]` and every personal-data match by
    /// `[KIND]` (borrowed when nothing matched).
    pub fn mask<'a>(&self, line: &'a str) -> Cow<'a, str> {
        if self.secrets.iter().any(|s| line.contains(s.as_str())) {
            let mut owned = line.to_owned();
            for s in &self.secrets {
                owned = owned.replace(s.as_str(), crate::config::REDACTED);
            }
            return Cow::Owned(self.personal(&owned).into_owned());
        }
        self.personal(line)
    }

    fn personal<'a>(&self, line: &'a str) -> Cow<'a, str> {
        self.pattern.replace_all(line, |c: &Captures<'_>| {
            let whole = c.get(0).map_or(0..0, |m| m.range());
            let keep = |key: &Regex| in_path(line, whole.clone()) || key.is_match(before(line, whole.start));
            // A bare 14-digit run is matched by the CNPJ alternative: judged like any digit run.
            let digits =
                c.name("DIGITS").or_else(|| c.get(0).filter(|m| m.as_str().bytes().all(|b| b.is_ascii_digit())));
            match digits {
                Some(run) if (run.len() == 11 || run.len() == 14) && keep(&self.number_key) => run.as_str().to_owned(),
                Some(run) if run.len() == 11 => "[CPF]".to_owned(),
                Some(run) if run.len() == 14 => "[CNPJ]".to_owned(),
                Some(run) => run.as_str().to_owned(),
                None if c.name("EVP").is_some() && keep(&self.id_key) => c[0].to_owned(),
                None => {
                    let kind = KINDS.iter().find(|k| c.name(k).is_some()).copied().unwrap_or("PII");
                    format!("[{kind}]")
                }
            }
        })
    }
}

/// Up to [`CONTEXT`] bytes of `line` before `at`, widened back to a word's start so that the
/// keys' `\b` is a real word boundary and not the window's edge (`…lows=` is not `rows=`).
fn before(line: &str, at: usize) -> &str {
    let mut from = at.saturating_sub(CONTEXT);
    while from > 0 && (!line.is_char_boundary(from) || line.as_bytes()[from - 1].is_ascii_alphanumeric()) {
        from -= 1;
    }
    &line[from..at]
}

/// Whether `range` of `line` lies in a path or a file name: the token around it (up to a space,
/// a quote, `=`, a comma or a bracket) holds a `/`, or is a data or log file's name.
fn in_path(line: &str, range: std::ops::Range<usize>) -> bool {
    let stop = |c: char| c.is_whitespace() || "\"'=,()[]{}<>;".contains(c);
    let start = line[..range.start].rfind(stop).map_or(0, |i| i + 1);
    let end = line[range.end..].find(stop).map_or(line.len(), |i| range.end + i);
    let token = &line[start..end];
    token.contains('/')
        || token.starts_with("part-")
        || [".parquet", ".json", ".crc", ".checkpoint"].iter().any(|ext| token.ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(s: &str) -> String {
        Masker::new().mask(s).into_owned()
    }

    #[test]
    fn masks_every_kind_of_pix_key_and_document() {
        assert_eq!(m("payer 123.456.789-09 paid"), "payer [CPF] paid");
        assert_eq!(m(r#"{"document":"12345678909"}"#), r#"{"document":"[CPF]"}"#);
        assert_eq!(m("cpf12345678909x"), "cpf[CPF]x");
        assert_eq!(m("cnpj 12.345.678/0001-95 and 12345678000195"), "cnpj [CNPJ] and [CNPJ]");
        assert_eq!(m("alnum 12.ABC.345/01DE-35 / 12ABC34501DE35"), "alnum [CNPJ] / [CNPJ]");
        assert_eq!(m("key maria.silva+pix@banco.com.br!"), "key [EMAIL]!");
        assert_eq!(m("phone +5511987654321 or +55 (11) 98765-4321"), "phone [PHONE] or [PHONE]");
        assert_eq!(m("evp 123e4567-e89b-12d3-a456-426614174000."), "evp [EVP].");
    }

    #[test]
    fn secrets_are_redacted_wherever_they_appear() {
        let m = Masker::with_secrets(vec!["hunter2-pass".into(), r#"a"quoted\pw"#.into()]);
        assert_eq!(
            m.mask("sasl.password=hunter2-pass; again hunter2-pass"),
            "sasl.password=[REDACTED]; again [REDACTED]"
        );
        assert_eq!(m.mask(r#"{"message":"pw a\"quoted\\pw"}"#), r#"{"message":"pw [REDACTED]"}"#);
        assert_eq!(m.mask("nothing here 123.456.789-09"), "nothing here [CPF]");
    }

    #[test]
    fn leaves_operational_values_alone() {
        for line in [
            "committed batch pipeline=payments rows=100000 offsets=0:1234567,1:998 ms=812",
            "E18236120202611251530abcdef123456 is an EndToEndId",
            "ispb 18236120 version 42 timestamp 1764100000000",
            "partition 3 of pix.payments: Delta has offsets Some(10)/None",
        ] {
            assert_eq!(m(line), line);
        }
    }

    #[test]
    fn keeps_pixlake_identifiers_by_context() {
        let file = "part-00000-4b3b2b6e-1d5e-4f0a-9c1d-2a7b8c9d0e1f-c000.snappy.parquet";
        for line in [
            format!("cannot write {file}: No space left on device"),
            format!("/warehouse/pix_payments/event_date=2026-12-01/{file}"),
            "s3://lake/pix/pix_payments/_delta_log/00000000000000000012.checkpoint.4b3b2b6e-1d5e-4f0a-9c1d-2a7b8c9d0e1f.json"
                .to_owned(),
            "duplicate event_id=4b3b2b6e-1d5e-4f0a-9c1d-2a7b8c9d0e1f at offset 12345678901".to_owned(),
            r#"{"event_id":"4b3b2b6e-1d5e-4f0a-9c1d-2a7b8c9d0e1f","table_id": "123e4567-e89b-12d3-a456-426614174000"}"#
                .to_owned(),
            "committed batch offsets=0:12345678901,1:12345678999,2:5 version=12345678901234".to_owned(),
            r#"{"offset":12345678901,"partition":3}"#.to_owned(),
        ] {
            assert_eq!(m(&line), line);
        }
    }

    #[test]
    fn a_key_cut_by_the_context_window_is_not_a_key() {
        // 44 bytes of digits and commas after "allow": the 48-byte window starts at its "low",
        // which must not count as the key `low`.
        let line = format!("allow {}1 12345678909", "1, ".repeat(14));
        assert_eq!(line.find("12345678909").unwrap() - CONTEXT, line.find("low").unwrap());
        assert!(m(&line).ends_with(" [CPF]"), "{}", m(&line));
    }

    #[test]
    fn masks_the_same_shapes_everywhere_else() {
        // Payload fields and free text: masked whatever the key.
        assert_eq!(m(r#"{"pix_key":"4b3b2b6e-1d5e-4f0a-9c1d-2a7b8c9d0e1f"}"#), r#"{"pix_key":"[EVP]"}"#);
        assert_eq!(m("device_id=4b3b2b6e-1d5e-4f0a-9c1d-2a7b8c9d0e1f"), "device_id=[EVP]");
        assert_eq!(m("chave 4b3b2b6e-1d5e-4f0a-9c1d-2a7b8c9d0e1f paid"), "chave [EVP] paid");
        assert_eq!(m("document=12345678909 offset=7"), "document=[CPF] offset=7");
        // An e-mail or a formatted CPF is personal data even in a path.
        assert_eq!(m("/tmp/ana@exemplo.com.br/123.456.789-09"), "/tmp/[EMAIL]/[CPF]");
        // A key pixlake owns does not protect what comes after a word in between.
        assert_eq!(m("offset=7 cpf 12345678909"), "offset=7 cpf [CPF]");
    }

    proptest! {
        /// Whatever surrounds them — unless it is one of pixlake's own number keys right before
        /// the digits (`offset=`) — generated CPFs and e-mails never survive masking.
        #[test]
        fn no_document_survives(prefix in "[ a-z=:,\"{}]{0,20}", digits in "[0-9]{11}", user in "[a-z]{1,10}",
                                suffix in "[ a-z=:,\"{}]{0,20}") {
            prop_assume!(!Regex::new(NUMBER_KEY).unwrap().is_match(&prefix));
            let line = format!("{prefix}{digits}{suffix} {prefix}{user}@exemplo.com.br{suffix}");
            let masked = m(&line);
            prop_assert!(!masked.contains(&digits), "{masked}");
            prop_assert!(!masked.contains(&format!("{user}@exemplo")), "{masked}");
        }
    }
}
