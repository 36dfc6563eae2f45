//! Personal data out of log lines (LGPD): CPF and CNPJ numbers, the five kinds of Pix keys
//! (CPF, CNPJ, e-mail, phone, random EVP key) are replaced by a marker naming what was there.
//!
//! pixlake never puts a payload field into a log line on purpose (rejection messages name the
//! field, never its value); this is the second line of defence, applied to every line whatever
//! wrote it — pixlake, librdkafka, delta-rs. Names cannot be recognised in free text: they are
//! kept out by the first line alone. Masking errs on the side of hiding: any run of exactly 11
//! or 14 digits is taken for a CPF or CNPJ (Kafka offsets of that size included).

use std::borrow::Cow;

use regex::{Captures, Regex};

/// The masking patterns, compiled once per logger, and the configuration's secret values.
#[derive(Clone)]
pub struct Masker {
    pattern: Regex,
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
        let pattern = Regex::new(PATTERN).unwrap_or_else(|e| panic!("mask pattern: {e}"));
        let mut all: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        let escaped: Vec<String> =
            all.iter().filter_map(|s| serde_json::to_string(s).ok().map(|q| q[1..q.len() - 1].to_owned())).collect();
        all.extend(escaped);
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Masker { pattern, secrets: all }
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
        self.pattern.replace_all(line, |c: &Captures<'_>| match c.name("DIGITS") {
            Some(run) if run.len() == 11 => "[CPF]".to_owned(),
            Some(run) if run.len() == 14 => "[CNPJ]".to_owned(),
            Some(run) => run.as_str().to_owned(),
            None => {
                let kind = KINDS.iter().find(|k| c.name(k).is_some()).copied().unwrap_or("PII");
                format!("[{kind}]")
            }
        })
    }
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

    proptest! {
        /// Whatever surrounds them, generated CPFs and e-mails never survive masking.
        #[test]
        fn no_document_survives(prefix in "[ a-z=:,\"{}]{0,20}", digits in "[0-9]{11}", user in "[a-z]{1,10}",
                                suffix in "[ a-z=:,\"{}]{0,20}") {
            let line = format!("{prefix}{digits}{suffix} {prefix}{user}@exemplo.com.br{suffix}");
            let masked = m(&line);
            prop_assert!(!masked.contains(&digits), "{masked}");
            prop_assert!(!masked.contains(&format!("{user}@exemplo")), "{masked}");
        }
    }
}
