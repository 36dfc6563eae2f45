//! The rule catalogue: every hard and soft rule id pixlake knows, with what it checks.
//!
//! Ids are part of the product contract (SPEC §3): they appear in `pix_quarantine.error_rule`, in
//! the `pixlake.error.rule` DLQ header, in `quality_flags`, in metrics labels and in
//! `docs/rules.md`. A test (`tests/rules_doc.rs`) fails when that document and this file disagree,
//! so the descriptions here are the documentation.
//!
//! A **hard** rule rejects the record: it goes to the quarantine table and the DLQ topic with that
//! id. A **soft** rule normalizes a value and records its id in the row's `quality_flags`.

use std::fmt;

macro_rules! rule_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $id:literal : $desc:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        impl $name {
            /// Every rule of this kind, in catalogue order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable SCREAMING_SNAKE_CASE id.
            pub const fn id(self) -> &'static str {
                match self { $($name::$variant => $id,)* }
            }

            /// What the rule checks, in one sentence (the `docs/rules.md` text).
            pub const fn description(self) -> &'static str {
                match self { $($name::$variant => $desc,)* }
            }

            /// The rule with this id, if there is one.
            pub fn from_id(id: &str) -> Option<Self> {
                match id { $($id => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.id())
            }
        }
    };
}

rule_enum! {
    /// A rule whose violation rejects the record. Checked in the order of SPEC §3 and of the
    /// fields in the message: the first violation found is the one reported.
    HardRule {
        OversizedMessage = "OVERSIZED_MESSAGE": "The message value is larger than `validation.max_message_bytes` (default 1 MiB).",
        MalformedJson = "MALFORMED_JSON": "The value is empty, not UTF-8, not valid JSON, or not a JSON object.",
        DuplicateField = "DUPLICATE_FIELD": "An object names the same field twice (parsers disagree on which one wins).",
        MissingField = "MISSING_FIELD": "A required field is absent or null (including `pix_key` when the initiation type needs one).",
        WrongType = "WRONG_TYPE": "A field has the wrong JSON type (e.g. a number where a string is required).",
        UnknownEventType = "UNKNOWN_EVENT_TYPE": "`event_type` is not `payment`, `receipt` or `refund`.",
        TopicMismatch = "TOPIC_MISMATCH": "`event_type` is not the category of the topic the record was published to.",
        UnsupportedSchemaVersion = "UNSUPPORTED_SCHEMA_VERSION": "`schema_version` is not 1.",
        InvalidEventId = "INVALID_EVENT_ID": "`event_id` is not a UUID (8-4-4-4-12 hexadecimal digits, any case).",
        InvalidLength = "INVALID_LENGTH": "A text field is empty or longer than allowed (`source` ≤ 64, names and descriptions ≤ 140, `device_id` ≤ 64).",
        InvalidTimestamp = "INVALID_TIMESTAMP": "A timestamp is not RFC 3339 with a `Z` or `±hh:mm` offset, or names an impossible date or time.",
        InvalidE2eId = "INVALID_E2E_ID": "An EndToEndId is not `E` + ISPB + `yyyyMMddHHmm` (a real UTC date and time) + 11 alphanumerics, 32 characters.",
        InvalidReturnId = "INVALID_RETURN_ID": "A return id (rtrId) is not `D` + ISPB + `yyyyMMddHHmm` (a real date and time) + 11 alphanumerics.",
        InvalidTxid = "INVALID_TXID": "`txid` is not 1–35 letters and digits, or its length does not fit the initiation type (QRDN 26–35, QRES/INIC ≤ 25, none for MANU/DICT).",
        InvalidRefundRequestId = "INVALID_REFUND_REQUEST_ID": "`refund_request_id` is not 1–35 letters and digits.",
        InvalidAmount = "INVALID_AMOUNT": "An amount is not a decimal with at most 2 places, or not > 0 and ≤ 9999999999.99.",
        InvalidCurrency = "INVALID_CURRENCY": "`currency` is not `BRL`.",
        InvalidIspb = "INVALID_ISPB": "An ISPB is not 8 characters `[0-9A-Z]`, or names the Banco Central (00038166) as payer or payee.",
        InvalidAccount = "INVALID_ACCOUNT": "A branch is not 1–4 digits or an account is not 1–20 digits.",
        InvalidCpf = "INVALID_CPF": "A CPF does not have 11 digits, has all digits equal, or fails its check digits.",
        InvalidCnpj = "INVALID_CNPJ": "A CNPJ is not 12 `[0-9A-Z]` + 2 digits, or fails its check digits (numeric and 2026 alphanumeric forms).",
        InvalidPixKey = "INVALID_PIX_KEY": "A Pix key does not match its type (CPF, CNPJ, EMAIL, PHONE, EVP), is longer than 77, or its type cannot be inferred.",
        InvalidEnum = "INVALID_ENUM": "A coded field is not one of its allowed values (initiation type, status, account type, channel, reason, direction…).",
        MissingRejectReason = "MISSING_REJECT_REASON": "A payment with status `RJCT` has no `reject_reason`.",
        InitiationKeyMismatch = "INITIATION_KEY_MISMATCH": "A payment initiated manually (`MANU`) carries a Pix key.",
        InconsistentRefund = "INCONSISTENT_REFUND": "A refund's dates contradict it: settled before requested, returned before the original Pix, or a settlement time that does not fit its status.",
        MalformedXml = "MALFORMED_XML": "An ISO 20022 message read by `ship-log --format iso20022` is not UTF-8, not well-formed XML, or not an SPI `Envelope` / ISO 20022 `Document`.",
        UnmatchedStatusReport = "UNMATCHED_STATUS_REPORT": "A pacs.002 read by `ship-log --format iso20022` names a payment or return whose pacs.008 / pacs.004 was not read within `ship_log.iso20022.join_window_seconds`.",
    }
}

impl HardRule {
    /// Rules only a source applies (`ship-log --format iso20022` reading XML): ingest never
    /// reports them, and the generator does not produce records that break them.
    pub const fn source_only(self) -> bool {
        matches!(self, HardRule::MalformedXml | HardRule::UnmatchedStatusReport)
    }
}

rule_enum! {
    /// A rule that normalizes a value; its id is appended to the row's `quality_flags`.
    SoftRule {
        WhitespaceTrimmed = "WHITESPACE_TRIMMED": "Leading or trailing whitespace was removed from a text field.",
        EmailLowercased = "EMAIL_LOWERCASED": "An e-mail Pix key was lowercased.",
        PhoneNormalized = "PHONE_NORMALIZED": "A phone Pix key was rewritten to E.164 (`+55…`), e.g. from `(11) 99876-5432`.",
        EvpLowercased = "EVP_LOWERCASED": "A random (EVP) Pix key was lowercased.",
        DocumentNormalized = "DOCUMENT_NORMALIZED": "A CPF or CNPJ (document or key) was reduced to its characters, punctuation removed, CNPJ letters uppercased.",
        TxidPlaceholderNulled = "TXID_PLACEHOLDER_NULLED": "A `txid` of `***` (static QR code without txid) was stored as null.",
        IspbPadded = "ISPB_PADDED": "A numeric ISPB shorter than 8 digits (or a JSON integer) was left-padded with zeros.",
        EnumCaseNormalized = "ENUM_CASE_NORMALIZED": "A coded value in the wrong case (e.g. `acsc`, `Payment`) was uppercased or lowercased.",
        AccountTypeMapped = "ACCOUNT_TYPE_MAPPED": "A Portuguese account type (`CORRENTE`, `POUPANCA`, `PAGAMENTO`) was mapped to `CACC`, `SVGS`, `TRAN`.",
        SchemaVersionCoerced = "SCHEMA_VERSION_COERCED": "`schema_version` given as the string \"1\" was stored as the integer 1.",
        AmountFromNumber = "AMOUNT_FROM_NUMBER": "An amount given as a JSON number was converted exactly from its text (never through binary floating point).",
        EventIdLowercased = "EVENT_ID_LOWERCASED": "An upper-case `event_id` was lowercased.",
        PixKeyTypeInferred = "PIX_KEY_TYPE_INFERRED": "A receipt without `pix_key_type` had the type inferred from the key.",
        RejectReasonWithoutRjct = "REJECT_REASON_WITHOUT_RJCT": "A payment whose status is not `RJCT` carries a `reject_reason` (kept as sent).",
        FutureEventTime = "FUTURE_EVENT_TIME": "`event_time` is more than 5 minutes after the time pixlake processed the record.",
        E2eTimeSkew = "E2E_TIME_SKEW": "The EndToEndId's minute is more than 12 h away from `event_time`.",
        NightLimitExceeded = "NIGHT_LIMIT_EXCEEDED": "A payment from an individual (CPF) above R$ 1,000.00 between 20:00 and 06:00 America/Sao_Paulo.",
        MedWindowExceeded = "MED_WINDOW_EXCEEDED": "A fraud (FR01) or operational (BE08) MED refund requested more than 80 days after the original Pix.",
        RescuedData = "RESCUED_DATA": "Fields the wire format does not define were kept, as JSON, in `_rescued_data`.",
    }
}

/// A set of soft rules, stored as a bit set so that recording a flag never allocates.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u64);

const _: () = assert!(SoftRule::ALL.len() <= 64, "Flags is a u64 bit set");

impl Flags {
    /// The empty set.
    pub const fn empty() -> Self {
        Flags(0)
    }

    /// Adds a rule (idempotent).
    pub fn insert(&mut self, rule: SoftRule) {
        self.0 |= 1 << (rule as u32);
    }

    /// Whether `rule` is in the set.
    pub fn contains(self, rule: SoftRule) -> bool {
        self.0 & (1 << (rule as u32)) != 0
    }

    /// Whether no rule is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Adds every rule of `other`.
    pub fn extend(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    /// The rules in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = SoftRule> {
        SoftRule::ALL.iter().copied().filter(move |r| self.contains(*r))
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(SoftRule::id)).finish()
    }
}

/// Why a record was rejected: the hard rule, the field path (`data.payer.document`) and a message
/// a person understands. The message never repeats personal data from the record (LGPD): it says
/// what is wrong with the value, not the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The hard rule that failed.
    pub rule: HardRule,
    /// Dotted path of the offending field, empty when the whole message is at fault.
    pub field: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl Rejection {
    /// A rejection of `field` by `rule`.
    pub fn new(rule: HardRule, field: &'static str, message: impl Into<String>) -> Self {
        Rejection { rule, field, message: message.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.rule, self.message)
        } else {
            write!(f, "{} at {}: {}", self.rule, self.field, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in HardRule::ALL {
            assert_eq!(HardRule::from_id(r.id()), Some(*r));
            assert!(seen.insert(r.id()), "duplicate id {}", r.id());
        }
        for r in SoftRule::ALL {
            assert_eq!(SoftRule::from_id(r.id()), Some(*r));
            assert!(seen.insert(r.id()), "duplicate id {}", r.id());
        }
    }

    #[test]
    fn spec_hard_rules_exist() {
        for id in [
            "MALFORMED_JSON",
            "MISSING_FIELD",
            "WRONG_TYPE",
            "UNKNOWN_EVENT_TYPE",
            "TOPIC_MISMATCH",
            "UNSUPPORTED_SCHEMA_VERSION",
            "INVALID_EVENT_ID",
            "INVALID_TIMESTAMP",
            "INVALID_E2E_ID",
            "INVALID_RETURN_ID",
            "INVALID_TXID",
            "INVALID_AMOUNT",
            "INVALID_CURRENCY",
            "INVALID_ISPB",
            "INVALID_CPF",
            "INVALID_CNPJ",
            "INVALID_PIX_KEY",
            "INVALID_ENUM",
            "MISSING_REJECT_REASON",
            "OVERSIZED_MESSAGE",
        ] {
            assert!(HardRule::from_id(id).is_some(), "{id} missing");
        }
        for id in ["FUTURE_EVENT_TIME", "E2E_TIME_SKEW", "NIGHT_LIMIT_EXCEEDED"] {
            assert!(SoftRule::from_id(id).is_some(), "{id} missing");
        }
    }

    #[test]
    fn flags_set_semantics() {
        let mut f = Flags::empty();
        assert!(f.is_empty());
        f.insert(SoftRule::RescuedData);
        f.insert(SoftRule::WhitespaceTrimmed);
        f.insert(SoftRule::RescuedData);
        assert!(f.contains(SoftRule::RescuedData));
        assert!(!f.contains(SoftRule::EmailLowercased));
        let v: Vec<_> = f.iter().collect();
        assert_eq!(v, vec![SoftRule::WhitespaceTrimmed, SoftRule::RescuedData]);
    }
}
