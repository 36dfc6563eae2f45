//! Brazilian tax documents: CPF (individuals) and CNPJ (companies, numeric and the 2026
//! alphanumeric form of IN RFB 2.229/2024), with their check digits.

use std::borrow::Cow;

use super::rules::HardRule;

/// Which document a value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    /// Cadastro de Pessoas Físicas: 11 digits.
    Cpf,
    /// Cadastro Nacional da Pessoa Jurídica: 12 `[0-9A-Z]` + 2 check digits.
    Cnpj,
}

impl DocumentKind {
    /// `CPF` or `CNPJ`, as stored in `*_document_type` columns.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Cpf => "CPF",
            DocumentKind::Cnpj => "CNPJ",
        }
    }
}

/// A checked document in canonical form: digits only (CNPJ letters uppercase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document<'a> {
    /// CPF or CNPJ.
    pub kind: DocumentKind,
    /// The canonical characters.
    pub value: Cow<'a, str>,
}

/// Whether 11 ASCII digits form a valid CPF: not all equal, both check digits right
/// (weights 10..2 then 11..2; digit = sum × 10 mod 11 mod 10).
pub fn cpf_is_valid(d: &[u8]) -> bool {
    let Ok(d) = <&[u8; 11]>::try_from(d) else {
        return false;
    };
    // Both weighted sums in one pass, no branch per digit: it runs for every payer and payee.
    const W1: [u32; 11] = [10, 9, 8, 7, 6, 5, 4, 3, 2, 0, 0];
    const W2: [u32; 11] = [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 0];
    let v = d.map(|c| u32::from(c.wrapping_sub(b'0')));
    let (mut digits, mut same, mut s1, mut s2) = (true, true, 0, 0);
    for i in 0..11 {
        digits &= v[i] < 10;
        same &= d[i] == d[0];
        s1 += v[i] * W1[i];
        s2 += v[i] * W2[i];
    }
    let check = |sum: u32| (sum * 10 % 11) % 10;
    digits && !same && check(s1) == v[9] && check(s2) == v[10]
}

/// The two CPF check digits for 9 base digits (used by the generator).
pub fn cpf_check_digits(base: &[u8; 9]) -> [u8; 2] {
    let mut all = [0u8; 11];
    all[..9].copy_from_slice(base);
    let calc = |d: &[u8], n: usize| {
        let sum: u32 = (0..n).map(|i| u32::from(d[i] - b'0') * (n as u32 + 1 - i as u32)).sum();
        b'0' + ((sum * 10 % 11) % 10) as u8
    };
    all[9] = calc(&all, 9);
    all[10] = calc(&all, 10);
    [all[9], all[10]]
}

const CNPJ_W1: [u32; 12] = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
const CNPJ_W2: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];

fn cnpj_digit(chars: &[u8], weights: &[u32]) -> u8 {
    // A character's value is its ASCII code − 48, so '0'..'9' are 0..9 and 'A' is 17.
    let sum: u32 = chars.iter().zip(weights).map(|(&c, w)| u32::from(c - b'0') * w).sum();
    let r = sum % 11;
    b'0' + if r < 2 { 0 } else { (11 - r) as u8 }
}

/// The two CNPJ check digits for 12 base characters `[0-9A-Z]` (used by the generator).
pub fn cnpj_check_digits(base: &[u8; 12]) -> [u8; 2] {
    let d1 = cnpj_digit(base, &CNPJ_W1);
    let mut thirteen = [0u8; 13];
    thirteen[..12].copy_from_slice(base);
    thirteen[12] = d1;
    [d1, cnpj_digit(&thirteen, &CNPJ_W2)]
}

/// Whether 14 characters form a valid CNPJ: 12 `[0-9A-Z]`, 2 digits, check digits right, and
/// not all equal.
pub fn cnpj_is_valid(d: &[u8]) -> bool {
    if d.len() != 14
        || !d[..12].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        || !d[12..].iter().all(u8::is_ascii_digit)
        || d.iter().all(|&c| c == d[0])
    {
        return false;
    }
    let mut base = [0u8; 12];
    base.copy_from_slice(&d[..12]);
    cnpj_check_digits(&base) == [d[12], d[13]]
}

/// Removes the punctuation people type in documents (`.`, `-`, `/`, spaces) and uppercases
/// letters; borrows when nothing changes. Returns the canonical text and whether it changed.
pub fn canonical_chars(s: &str) -> (Cow<'_, str>, bool) {
    let clean = s.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    if clean {
        return (Cow::Borrowed(s), false);
    }
    let out: String =
        s.chars().filter(|c| !matches!(c, '.' | '-' | '/' | ' ' | '\t')).map(|c| c.to_ascii_uppercase()).collect();
    (Cow::Owned(out), true)
}

/// Checks a CPF or CNPJ given with or without punctuation. The kind is decided by length: up to
/// 11 characters a CPF, more a CNPJ. Returns the document and whether it was normalized, or the
/// failing rule and a message (without the value itself).
pub fn parse_document(s: &str) -> Result<(Document<'_>, bool), (HardRule, &'static str)> {
    // Most documents arrive valid and canonical (a valid CPF or CNPJ has no punctuation or
    // lowercase): one pass over the bytes, without looking for what to remove first.
    if cpf_is_valid(s.as_bytes()) {
        return Ok((Document { kind: DocumentKind::Cpf, value: Cow::Borrowed(s) }, false));
    }
    if cnpj_is_valid(s.as_bytes()) {
        return Ok((Document { kind: DocumentKind::Cnpj, value: Cow::Borrowed(s) }, false));
    }
    let (value, changed) = canonical_chars(s);
    let b = value.as_bytes();
    // The valid document first, in one pass; which rule a bad one breaks only after.
    if b.len() <= 11 {
        if cpf_is_valid(b) {
            return Ok((Document { kind: DocumentKind::Cpf, value }, changed));
        }
        return Err(if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
            (HardRule::InvalidCpf, "a CPF has 11 digits (a CNPJ 14 characters)")
        } else if b.iter().all(|&c| c == b[0]) {
            (HardRule::InvalidCpf, "a CPF cannot have all digits equal")
        } else {
            (HardRule::InvalidCpf, "CPF check digits do not match")
        });
    }
    if cnpj_is_valid(b) {
        return Ok((Document { kind: DocumentKind::Cnpj, value }, changed));
    }
    Err(if b.len() != 14 {
        (HardRule::InvalidCnpj, "a CNPJ has 14 characters (a CPF 11 digits)")
    } else if !b[..12].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        || !b[12..].iter().all(u8::is_ascii_digit)
    {
        (HardRule::InvalidCnpj, "a CNPJ is 12 letters or digits followed by 2 check digits")
    } else {
        (HardRule::InvalidCnpj, "CNPJ check digits do not match")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpf_examples() {
        let (d, changed) = parse_document("529.982.247-25").unwrap();
        assert_eq!(d.kind, DocumentKind::Cpf);
        assert_eq!(d.value, "52998224725");
        assert!(changed);
        let (d, changed) = parse_document("52998224725").unwrap();
        assert!(!changed && matches!(d.value, Cow::Borrowed(_)));
        assert_eq!(parse_document("52998224724").unwrap_err().0, HardRule::InvalidCpf);
        assert_eq!(
            parse_document("111.111.111-11").unwrap_err(),
            (HardRule::InvalidCpf, "a CPF cannot have all digits equal")
        );
        assert_eq!(parse_document("00000000000").unwrap_err().0, HardRule::InvalidCpf);
        assert_eq!(parse_document("5299822472").unwrap_err().0, HardRule::InvalidCpf);
        assert_eq!(parse_document("5299822472a").unwrap_err().0, HardRule::InvalidCpf);
    }

    #[test]
    fn cnpj_examples() {
        let (d, changed) = parse_document("18236120000158").unwrap();
        assert_eq!((d.kind, changed), (DocumentKind::Cnpj, false));
        assert!(parse_document("18.236.120/0001-58").unwrap().1);
        // The alphanumeric form, example of the Receita Federal.
        let (d, _) = parse_document("12.ABC.345/01DE-35").unwrap();
        assert_eq!(d.value, "12ABC34501DE35");
        // Lowercase letters are uppercased (the canonical form).
        assert_eq!(parse_document("12.abc.345/01de-35").unwrap().0.value, "12ABC34501DE35");
        assert_eq!(parse_document("12ABC34501DE36").unwrap_err().0, HardRule::InvalidCnpj);
        assert_eq!(parse_document("18236120000159").unwrap_err().0, HardRule::InvalidCnpj);
        assert_eq!(parse_document("11111111111111").unwrap_err().0, HardRule::InvalidCnpj);
        assert_eq!(parse_document("1823612000015").unwrap_err().0, HardRule::InvalidCnpj);
        assert_eq!(parse_document("12ABC34501DEAB").unwrap_err().0, HardRule::InvalidCnpj);
    }

    /// The CPF rule as written (weights 10..2, then 11..2), for the one-pass version to match.
    fn cpf_reference(d: &[u8]) -> bool {
        if d.len() != 11 || !d.iter().all(u8::is_ascii_digit) || d.iter().all(|&c| c == d[0]) {
            return false;
        }
        let v = |i: usize| u32::from(d[i] - b'0');
        let check = |n: usize| (0..n).map(|i| v(i) * (n as u32 + 1 - i as u32)).sum::<u32>() * 10 % 11 % 10;
        check(9) == v(9) && check(10) == v(10)
    }

    /// `parse_document` as first written: canonical characters first, then each rule in order.
    fn parse_document_reference(s: &str) -> Result<(DocumentKind, String, bool), (HardRule, &'static str)> {
        let (value, changed) = canonical_chars(s);
        let b = value.as_bytes();
        if b.len() <= 11 {
            if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
                return Err((HardRule::InvalidCpf, "a CPF has 11 digits (a CNPJ 14 characters)"));
            }
            if b.iter().all(|&c| c == b[0]) {
                return Err((HardRule::InvalidCpf, "a CPF cannot have all digits equal"));
            }
            if !cpf_reference(b) {
                return Err((HardRule::InvalidCpf, "CPF check digits do not match"));
            }
            return Ok((DocumentKind::Cpf, value.into_owned(), changed));
        }
        if b.len() != 14 {
            return Err((HardRule::InvalidCnpj, "a CNPJ has 14 characters (a CPF 11 digits)"));
        }
        if !b[..12].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            || !b[12..].iter().all(u8::is_ascii_digit)
        {
            return Err((HardRule::InvalidCnpj, "a CNPJ is 12 letters or digits followed by 2 check digits"));
        }
        if !cnpj_is_valid(b) {
            return Err((HardRule::InvalidCnpj, "CNPJ check digits do not match"));
        }
        Ok((DocumentKind::Cnpj, value.into_owned(), changed))
    }

    /// A valid CPF or CNPJ, written plainly or with the punctuation people type, lowercased, or
    /// with one character changed.
    fn document_text() -> impl Strategy<Value = String> {
        let cpf = proptest::array::uniform9(b'0'..=b'9').prop_map(|base| {
            let [a, b] = cpf_check_digits(&base);
            let d: String = base.iter().chain(&[a, b]).map(|&c| c as char).collect();
            d
        });
        let cnpj = proptest::array::uniform12(prop_oneof![b'0'..=b'9', b'A'..=b'Z']).prop_map(|base| {
            let [a, b] = cnpj_check_digits(&base);
            let d: String = base.iter().chain(&[a, b]).map(|&c| c as char).collect();
            d
        });
        let punctuate = |d: String| {
            if d.len() == 11 {
                format!("{}.{}.{}-{}", &d[..3], &d[3..6], &d[6..9], &d[9..])
            } else {
                format!("{}.{}.{}/{}-{}", &d[..2], &d[2..5], &d[5..8], &d[8..12], &d[12..])
            }
        };
        (
            prop_oneof![cpf, cnpj],
            0u8..4,
            0usize..18,
            proptest::sample::select(vec!['0', '9', 'a', 'Z', '.', ' ', 'é', '-']),
        )
            .prop_map(move |(d, how, at, c)| match how {
                0 => d,
                1 => punctuate(d),
                2 => d.to_lowercase(),
                _ => d.chars().enumerate().map(|(i, x)| if i == at { c } else { x }).collect(),
            })
    }

    proptest! {
        #[test]
        fn parse_document_matches_its_first_definition(s in document_text()) {
            let got = parse_document(&s).map(|(d, changed)| (d.kind, d.value.into_owned(), changed));
            prop_assert_eq!(got, parse_document_reference(&s));
        }

        #[test]
        fn cpf_check_matches_its_definition(d in proptest::collection::vec(prop_oneof![8 => b'0'..=b'9', 1 => Just(b'/'), 1 => Just(b':'), 1 => Just(0xff)], 10..=12)) {
            prop_assert_eq!(cpf_is_valid(&d), cpf_reference(&d));
        }

        #[test]
        fn valid_cpfs_match_their_definition(base in proptest::array::uniform9(b'0'..=b'9'), flip in 0usize..12) {
            let [a, b] = cpf_check_digits(&base);
            let mut all = base.to_vec();
            all.extend([a, b]);
            if let Some(c) = all.get_mut(flip) {
                *c = b'0' + (*c - b'0' + 3) % 10;
            }
            prop_assert_eq!(cpf_is_valid(&all), cpf_reference(&all));
        }

        #[test]
        fn generated_cpfs_validate(base in proptest::array::uniform9(b'0'..=b'9')) {
            let [a, b] = cpf_check_digits(&base);
            let mut all = base.to_vec();
            all.extend([a, b]);
            prop_assume!(!all.iter().all(|&c| c == all[0]));
            prop_assert!(cpf_is_valid(&all));
            // Changing a check digit breaks it. (A base digit change can go unnoticed: the
            // `mod 10` folds remainders 10 and 0 together — a known weakness of the CPF.)
            for i in 9..11 {
                let mut bad = all.clone();
                bad[i] = b'0' + (bad[i] - b'0' + 1) % 10;
                prop_assert!(!cpf_is_valid(&bad));
            }
        }

        #[test]
        fn generated_cnpjs_validate(base in proptest::array::uniform12(prop_oneof![b'0'..=b'9', b'A'..=b'Z'])) {
            let [a, b] = cnpj_check_digits(&base);
            let mut all = base.to_vec();
            all.extend([a, b]);
            prop_assume!(!all.iter().all(|&c| c == all[0]));
            prop_assert!(cnpj_is_valid(&all));
            let mut bad = all.clone();
            bad[13] = b'0' + (bad[13] - b'0' + 1) % 10;
            prop_assert!(!cnpj_is_valid(&bad));
        }
    }
}
