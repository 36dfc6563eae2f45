//! Participants (`payer`, `payee`): institution (ISPB), branch, account, account type, document
//! and name — the part of an event that carries personal data.

use std::borrow::Cow;

use super::codes::AccountType;
use super::documents::{Document, parse_document};
use super::event::Ctx;
use super::fields::{Obj, Spec, object_spec};
use super::ids::{BCB_ISPB, is_ispb};
use super::json::JsonKind;
use super::rules::{Flags, HardRule, Rejection, SoftRule};

object_spec!(pub PAYER = "data.payer" {
    ISPB = "ispb", BRANCH = "branch", ACCOUNT = "account", ACCOUNT_TYPE = "account_type",
    DOCUMENT = "document", NAME = "name",
});
object_spec!(pub PAYEE = "data.payee" {
    ISPB = "ispb", BRANCH = "branch", ACCOUNT = "account", ACCOUNT_TYPE = "account_type",
    DOCUMENT = "document", NAME = "name",
});

// Both specs list the same names in the same order, so one set of indexes serves both.
const _: () = assert!(PAYER::NAME == PAYEE::NAME && PAYER::ISPB == PAYEE::ISPB);
use PAYER as F;

/// Which side of the transaction a participant is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Debtor (pays).
    Payer,
    /// Creditor (receives).
    Payee,
}

impl Role {
    /// The spec of this side's object.
    pub fn spec(self) -> &'static Spec {
        match self {
            Role::Payer => &PAYER,
            Role::Payee => &PAYEE,
        }
    }
}

/// An ISPB in canonical form, kept inline. Holds ASCII only: [`Ispb::parse`], its one
/// constructor, stores digits and capital letters and nothing else.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ispb([u8; 8]);

impl Ispb {
    /// The 8 characters.
    pub fn as_str(&self) -> &str {
        debug_assert!(self.0.is_ascii());
        // SAFETY: only ASCII is ever stored (see the type), and ASCII is UTF-8. Checking it again
        // here, as `str::from_utf8` would, ran for every participant of every row appended.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// Parses an ISPB: 8 characters `[0-9A-Z]`; shorter digit strings and JSON integers are
    /// left-padded with zeros (`ISPB_PADDED`).
    pub fn parse(text: &str, flags: &mut Flags) -> Option<Ispb> {
        let b = text.as_bytes();
        if b.len() < 8 && !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
            flags.insert(SoftRule::IspbPadded);
            let mut out = [b'0'; 8];
            out[8 - b.len()..].copy_from_slice(b);
            return Some(Ispb(out));
        }
        if !is_ispb(b) {
            return None;
        }
        let mut out = [0u8; 8];
        out.copy_from_slice(b);
        Some(Ispb(out))
    }
}

impl std::fmt::Debug for Ispb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Participant<'a> {
    /// Institution.
    pub ispb: Ispb,
    /// Branch (agência), 1–4 digits.
    pub branch: Option<Cow<'a, str>>,
    /// Account number, 1–20 digits.
    pub account: Option<Cow<'a, str>>,
    /// Account type.
    pub account_type: Option<AccountType>,
    /// CPF or CNPJ, canonical.
    pub document: Document<'a>,
    /// Holder's name, ≤ 140 characters.
    pub name: Option<Cow<'a, str>>,
}

/// Reads and checks the participant object at field `f` of `d`, keeping its unknown fields.
pub fn read<'a>(d: &mut Obj<'a>, f: usize, role: Role, ctx: &mut Ctx) -> Result<Participant<'a>, Rejection> {
    let obj = d.req_object(f, role.spec())?;
    ctx.rescue(&obj);
    parse(&obj, role, &mut ctx.flags)
}

/// Reads and checks a participant object.
pub fn parse<'a>(o: &Obj<'a>, role: Role, flags: &mut Flags) -> Result<Participant<'a>, Rejection> {
    let ispb_text: Cow<'a, str> = match o.kind(F::ISPB) {
        None => {
            return Err(o.reject(HardRule::MissingField, F::ISPB, "required field is missing, null or empty"));
        }
        Some(JsonKind::Number) => {
            let raw = o.raw(F::ISPB).map(|r| r.get()).unwrap_or_default();
            if !raw.bytes().all(|c| c.is_ascii_digit()) {
                return Err(o.reject(
                    HardRule::InvalidIspb,
                    F::ISPB,
                    "an ISPB given as a number must be a non-negative integer",
                ));
            }
            flags.insert(SoftRule::IspbPadded);
            Cow::Borrowed(raw)
        }
        Some(_) => o.req_str(F::ISPB, flags)?,
    };
    let ispb = Ispb::parse(&ispb_text, flags).ok_or_else(|| {
        o.reject(
            HardRule::InvalidIspb,
            F::ISPB,
            "an ISPB is 8 characters [0-9A-Z] (numeric ISPBs may omit leading zeros)",
        )
    })?;
    if ispb.0 == *BCB_ISPB.as_bytes() {
        return Err(o.reject(
            HardRule::InvalidIspb,
            F::ISPB,
            "00038166 is the Banco Central (SPI) and is never a payer or payee",
        ));
    }
    let branch = o.opt_str(F::BRANCH, flags)?;
    if let Some(b) = &branch
        && (b.len() > 4 || !b.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(o.reject(HardRule::InvalidAccount, F::BRANCH, "a branch is 1–4 digits"));
    }
    let account = o.opt_str(F::ACCOUNT, flags)?;
    if let Some(a) = &account
        && (a.len() > 20 || !a.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(o.reject(
            HardRule::InvalidAccount,
            F::ACCOUNT,
            "an account number is 1–20 digits (no check-digit dash)",
        ));
    }
    let account_type = o.opt_code::<AccountType>(F::ACCOUNT_TYPE, flags)?;
    if role == Role::Payer && account_type == Some(AccountType::Slry) {
        return Err(o.reject(
            HardRule::InvalidEnum,
            F::ACCOUNT_TYPE,
            "a salary account (SLRY) can only receive, it cannot pay",
        ));
    }
    let doc_text = o.req_str(F::DOCUMENT, flags)?;
    let document = match doc_text {
        Cow::Borrowed(s) => {
            let (doc, changed) = parse_document(s).map_err(|(rule, msg)| o.reject(rule, F::DOCUMENT, msg))?;
            if changed {
                flags.insert(SoftRule::DocumentNormalized);
            }
            doc
        }
        Cow::Owned(s) => {
            let (doc, changed) = parse_document(&s).map_err(|(rule, msg)| o.reject(rule, F::DOCUMENT, msg))?;
            if changed {
                flags.insert(SoftRule::DocumentNormalized);
            }
            Document { kind: doc.kind, value: Cow::Owned(doc.value.into_owned()) }
        }
    };
    let name = o.opt_text(F::NAME, 140, flags)?;
    Ok(Participant { ispb, branch, account, account_type, document, name })
}
