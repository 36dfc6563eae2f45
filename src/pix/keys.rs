//! Pix keys (chaves DICT): CPF, CNPJ, EMAIL, PHONE, EVP — checking, normalization, inference.
//!
//! Formats from the BCB DICT API (`bacen/pix-dict-api`, schemas.yaml): at most 77 characters;
//! e-mail lowercase by the DICT regex; phone E.164; EVP a lowercase UUID.

use std::borrow::Cow;

use super::documents::{DocumentKind, parse_document};
use super::ids::Uuid36;
use super::rules::{Flags, SoftRule};

/// Longest key DICT accepts.
pub const MAX_KEY_LEN: usize = 77;

/// The type of a Pix key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixKeyType {
    Cpf,
    Cnpj,
    Email,
    Phone,
    Evp,
}

impl PixKeyType {
    /// Every type, in DICT order.
    pub const ALL: [PixKeyType; 5] =
        [PixKeyType::Cpf, PixKeyType::Cnpj, PixKeyType::Email, PixKeyType::Phone, PixKeyType::Evp];

    /// The wire and table spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PixKeyType::Cpf => "CPF",
            PixKeyType::Cnpj => "CNPJ",
            PixKeyType::Email => "EMAIL",
            PixKeyType::Phone => "PHONE",
            PixKeyType::Evp => "EVP",
        }
    }
}

/// A checked key in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PixKey<'a> {
    /// The key's type (declared, or inferred).
    pub kind: PixKeyType,
    /// The canonical key text.
    pub value: Cow<'a, str>,
}

/// Checks `key` against `kind` and normalizes it, recording soft flags. On failure returns a
/// message that does not repeat the key (it may be personal data).
pub fn check_key<'a>(key: Cow<'a, str>, kind: PixKeyType, flags: &mut Flags) -> Result<PixKey<'a>, &'static str> {
    if key.len() > MAX_KEY_LEN {
        return Err("a Pix key has at most 77 characters");
    }
    let value = match kind {
        PixKeyType::Cpf | PixKeyType::Cnpj => {
            let (doc, changed) = parse_document(&key).map_err(|_| match kind {
                PixKeyType::Cpf => "not a valid CPF key (11 digits with correct check digits)",
                _ => "not a valid CNPJ key (14 characters with correct check digits)",
            })?;
            let expected = if kind == PixKeyType::Cpf { DocumentKind::Cpf } else { DocumentKind::Cnpj };
            if doc.kind != expected {
                return Err(if kind == PixKeyType::Cpf {
                    "key type is CPF but the key is a CNPJ"
                } else {
                    "key type is CNPJ but the key is a CPF"
                });
            }
            if changed {
                flags.insert(SoftRule::DocumentNormalized);
                Cow::Owned(doc.value.into_owned())
            } else {
                key
            }
        }
        PixKeyType::Email => {
            let value = if key.bytes().any(|c| c.is_ascii_uppercase()) {
                flags.insert(SoftRule::EmailLowercased);
                Cow::Owned(key.to_ascii_lowercase())
            } else {
                key
            };
            if !is_dict_email(&value) {
                return Err("not a valid e-mail key (DICT format, lowercase, at most 77 characters)");
            }
            value
        }
        PixKeyType::Phone => match normalize_phone(&key) {
            Some(None) => key,
            Some(Some(e164)) => {
                flags.insert(SoftRule::PhoneNormalized);
                Cow::Owned(e164)
            }
            None => {
                return Err("not a phone number in E.164 (+55 DDD number) or a Brazilian format");
            }
        },
        PixKeyType::Evp => {
            let (uuid, changed) = Uuid36::parse(&key).ok_or("an EVP key is a UUID (8-4-4-4-12 hexadecimal digits)")?;
            if changed {
                flags.insert(SoftRule::EvpLowercased);
                Cow::Owned(uuid.as_str().to_owned())
            } else {
                key
            }
        }
    };
    Ok(PixKey { kind, value })
}

/// Infers a key's type the way DICT clients do: `@` → EMAIL, UUID → EVP, `+` → PHONE, a valid
/// CPF → CPF, a valid CNPJ → CNPJ, a Brazilian phone in national format → PHONE.
pub fn infer_key_type(key: &str) -> Option<PixKeyType> {
    if key.contains('@') {
        return Some(PixKeyType::Email);
    }
    if Uuid36::parse(key).is_some() {
        return Some(PixKeyType::Evp);
    }
    if key.starts_with('+') {
        return Some(PixKeyType::Phone);
    }
    if let Ok((doc, _)) = parse_document(key) {
        return Some(match doc.kind {
            DocumentKind::Cpf => PixKeyType::Cpf,
            DocumentKind::Cnpj => PixKeyType::Cnpj,
        });
    }
    normalize_phone(key).map(|_| PixKeyType::Phone)
}

/// Normalizes a phone number to E.164. `Some(None)`: already E.164 as given; `Some(Some(s))`:
/// rewritten; `None`: not a phone number. Accepts the formats people type: `+5511998765432`,
/// `(11) 99876-5432`, `11998765432`, `5511998765432`, `+55 11 99876-5432`. A Brazilian number
/// must be +55, a DDD of two digits without zeros, and 8 or 9 digits.
pub fn normalize_phone(s: &str) -> Option<Option<String>> {
    let b = s.as_bytes();
    if b.first() == Some(&b'+') && b.len() >= 4 && b[1..].iter().all(u8::is_ascii_digit) {
        return is_e164(b).then_some(None);
    }
    let mut digits = String::with_capacity(16);
    for (i, c) in s.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '-' | '(' | ')' | '.' => {}
            _ => return None,
        }
    }
    let national = match digits.len() {
        10 | 11 => digits.as_str(),
        12 | 13 if digits.starts_with("55") => &digits[2..],
        _ => return None,
    };
    let nb = national.as_bytes();
    if nb[0] == b'0' || nb[1] == b'0' {
        return None;
    }
    let e164 = format!("+55{national}");
    is_e164(e164.as_bytes()).then_some(Some(e164))
}

/// DICT's phone pattern `^\+[1-9][0-9]\d{1,14}$`.
fn is_e164(b: &[u8]) -> bool {
    b.len() >= 4
        && b.len() <= 17
        && b[0] == b'+'
        && (b'1'..=b'9').contains(&b[1])
        && b[2..].iter().all(u8::is_ascii_digit)
}

/// DICT's e-mail pattern:
/// `^[a-z0-9.!#$&'*+\/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$`.
pub fn is_dict_email(s: &str) -> bool {
    if s.len() > MAX_KEY_LEN {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b".!#$&'*+/=?^_`{|}~-".contains(&c));
    local_ok
        && domain.split('.').all(|label| {
            let l = label.as_bytes();
            !l.is_empty()
                && l.len() <= 63
                && l.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && l[0] != b'-'
                && l[l.len() - 1] != b'-'
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, kind: PixKeyType) -> Result<(String, Flags), &'static str> {
        let mut flags = Flags::empty();
        check_key(Cow::Borrowed(key), kind, &mut flags).map(|k| (k.value.into_owned(), flags))
    }

    #[test]
    fn phones_in_the_formats_people_type() {
        for typed in ["(11) 99876-5432", "11998765432", "5511998765432", "+55 11 99876-5432", "11 99876.5432"] {
            let (v, flags) = check(typed, PixKeyType::Phone).unwrap();
            assert_eq!(v, "+5511998765432", "{typed}");
            assert!(flags.contains(SoftRule::PhoneNormalized));
        }
        let (v, flags) = check("+5510998765432", PixKeyType::Phone).unwrap();
        assert_eq!(v, "+5510998765432");
        assert!(flags.is_empty());
        // A landline: 8 digits after the DDD.
        assert_eq!(check("(21) 3333-4444", PixKeyType::Phone).unwrap().0, "+552133334444");
        // Foreign E.164 numbers are valid keys as given.
        assert!(check("+14155552671", PixKeyType::Phone).is_ok());
        for bad in ["998765432", "(01) 99876-5432", "phone", "+0123", "+55119987654321234567", "11-9876-543a"] {
            assert!(check(bad, PixKeyType::Phone).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        let (v, flags) = check("Fulano.Silva@Example.COM.br", PixKeyType::Email).unwrap();
        assert_eq!(v, "fulano.silva@example.com.br");
        assert!(flags.contains(SoftRule::EmailLowercased));
        assert!(check("a+b@x", PixKeyType::Email).is_ok());
        for bad in ["no-at-sign", "@example.com", "a@-x.com", "a@x..com", "a b@x.com", "a@x_y.com"] {
            assert!(check(bad, PixKeyType::Email).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(70));
        assert_eq!(check(&long, PixKeyType::Email), Err("a Pix key has at most 77 characters"));
    }

    #[test]
    fn documents_as_keys() {
        let (v, flags) = check("529.982.247-25", PixKeyType::Cpf).unwrap();
        assert_eq!(v, "52998224725");
        assert!(flags.contains(SoftRule::DocumentNormalized));
        assert!(check("18236120000158", PixKeyType::Cnpj).is_ok());
        assert_eq!(check("18236120000158", PixKeyType::Cpf), Err("key type is CPF but the key is a CNPJ"));
        assert!(check("52998224724", PixKeyType::Cpf).is_err());
    }

    #[test]
    fn evp_keys() {
        let (v, flags) = check("123E4567-E89B-12D3-A456-426614174000", PixKeyType::Evp).unwrap();
        assert_eq!(v, "123e4567-e89b-12d3-a456-426614174000");
        assert!(flags.contains(SoftRule::EvpLowercased));
        assert!(check("123e4567e89b12d3a456426614174000", PixKeyType::Evp).is_err());
    }

    #[test]
    fn inference() {
        assert_eq!(infer_key_type("a@b.com"), Some(PixKeyType::Email));
        assert_eq!(infer_key_type("123e4567-e89b-12d3-a456-426614174000"), Some(PixKeyType::Evp));
        assert_eq!(infer_key_type("+5511998765432"), Some(PixKeyType::Phone));
        assert_eq!(infer_key_type("52998224725"), Some(PixKeyType::Cpf));
        assert_eq!(infer_key_type("18236120000158"), Some(PixKeyType::Cnpj));
        assert_eq!(infer_key_type("(11) 99876-5432"), Some(PixKeyType::Phone));
        assert_eq!(infer_key_type("not a key"), None);
    }
}
