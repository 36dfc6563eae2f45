//! Coded values of the wire format (ISO 20022 and BCB enumerations) and how loose spellings are
//! normalized: case is fixed with `ENUM_CASE_NORMALIZED`, Portuguese account types are mapped
//! with `ACCOUNT_TYPE_MAPPED`, anything else is `INVALID_ENUM`.

use super::keys::PixKeyType;
use super::rules::{Flags, SoftRule};

/// A closed set of codes with one canonical spelling each.
pub trait Code: Copy + 'static {
    /// Every code, canonical spelling order.
    const ALL: &'static [Self];
    /// The canonical spelling.
    fn as_str(self) -> &'static str;
    /// Other accepted spellings (compared case-insensitively) and what they map to.
    fn alias(_s: &str) -> Option<Self> {
        None
    }

    /// Parses `s`, normalizing case and aliases into `flags`; `None` if unknown.
    fn parse(s: &str, flags: &mut Flags) -> Option<Self> {
        if let Some(c) = Self::ALL.iter().find(|c| c.as_str() == s) {
            return Some(*c);
        }
        if let Some(c) = Self::ALL.iter().find(|c| c.as_str().eq_ignore_ascii_case(s)) {
            flags.insert(SoftRule::EnumCaseNormalized);
            return Some(*c);
        }
        let alias = Self::alias(s)?;
        flags.insert(SoftRule::AccountTypeMapped);
        Some(alias)
    }

    /// The allowed spellings, for messages: `ACSP, ACSC, RJCT`.
    fn allowed() -> String {
        Self::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
    }
}

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant,)* }

        impl $name {
            /// The canonical spelling.
            pub const fn code(self) -> &'static str {
                match self { $($name::$variant => $s,)* }
            }
        }
    };
}

code_enum! {
    /// How a payment was initiated (Open Finance `localInstrument`).
    InitiationType {
        /// Manual entry of the account: no key.
        Manu = "MANU",
        /// By Pix key looked up in DICT.
        Dict = "DICT",
        /// Dynamic QR code (txid 26–35).
        Qrdn = "QRDN",
        /// Static QR code (txid ≤ 25 or none).
        Qres = "QRES",
        /// By a payment initiator (txid ≤ 25).
        Inic = "INIC",
        /// Proximity (NFC).
        Apdn = "APDN",
        /// Pix Automático.
        Auto = "AUTO",
    }
}

code_enum! {
    /// pacs.002 status of a payment.
    PaymentStatus {
        /// Accepted, settlement in process.
        Acsp = "ACSP",
        /// Settled.
        Acsc = "ACSC",
        /// Rejected (needs `reject_reason`).
        Rjct = "RJCT",
    }
}

code_enum! {
    /// Account type of a participant (DICT `AccountType`).
    AccountType {
        /// Conta corrente.
        Cacc = "CACC",
        /// Conta poupança.
        Svgs = "SVGS",
        /// Conta de pagamento.
        Tran = "TRAN",
        /// Conta salário (only receives).
        Slry = "SLRY",
    }
}

code_enum! {
    /// Channel a payment was made through.
    Channel {
        App = "APP",
        Web = "WEB",
        Api = "API",
        Atm = "ATM",
        Branch = "BRANCH",
    }
}

code_enum! {
    /// Whether the reporting institution sent or received the refund.
    RefundDirection {
        Sent = "SENT",
        Received = "RECEIVED",
    }
}

code_enum! {
    /// pacs.004 return reason.
    RefundReason {
        /// Devolução solicitada pelo recebedor (ORIGINAL).
        Md06 = "MD06",
        /// Pix Saque / Pix Troco (RETIRADA).
        Sl02 = "SL02",
        /// MED, operational failure (MED_OPERACIONAL).
        Be08 = "BE08",
        /// MED, well-founded suspicion of fraud (MED_FRAUDE).
        Fr01 = "FR01",
    }
}

code_enum! {
    /// API Pix refund status.
    RefundStatus {
        EmProcessamento = "EM_PROCESSAMENTO",
        Devolvido = "DEVOLVIDO",
        NaoRealizado = "NAO_REALIZADO",
    }
}

code_enum! {
    /// The wire's `currency` (only the real is allowed).
    Currency {
        Brl = "BRL",
    }
}

macro_rules! impl_code {
    ($name:ident: $($variant:ident),*) => {
        impl Code for $name {
            const ALL: &'static [Self] = &[$($name::$variant),*];
            fn as_str(self) -> &'static str {
                self.code()
            }
        }
    };
}

impl_code!(InitiationType: Manu, Dict, Qrdn, Qres, Inic, Apdn, Auto);
impl_code!(PaymentStatus: Acsp, Acsc, Rjct);
impl_code!(Channel: App, Web, Api, Atm, Branch);
impl_code!(RefundDirection: Sent, Received);
impl_code!(RefundReason: Md06, Sl02, Be08, Fr01);
impl_code!(RefundStatus: EmProcessamento, Devolvido, NaoRealizado);
impl_code!(Currency: Brl);

impl Code for AccountType {
    const ALL: &'static [Self] = &[AccountType::Cacc, AccountType::Svgs, AccountType::Tran, AccountType::Slry];
    fn as_str(self) -> &'static str {
        self.code()
    }
    fn alias(s: &str) -> Option<Self> {
        const PT: [(&str, AccountType); 5] = [
            ("CORRENTE", AccountType::Cacc),
            ("POUPANCA", AccountType::Svgs),
            ("POUPANÇA", AccountType::Svgs),
            ("PAGAMENTO", AccountType::Tran),
            ("SALARIO", AccountType::Slry),
        ];
        PT.iter().find(|(pt, _)| pt.eq_ignore_ascii_case(s) || pt.to_lowercase() == s.to_lowercase()).map(|(_, t)| *t)
    }
}

impl Code for PixKeyType {
    const ALL: &'static [Self] = &PixKeyType::ALL;
    fn as_str(self) -> &'static str {
        PixKeyType::as_str(self)
    }
}

impl InitiationType {
    /// Whether this initiation type carries a Pix key (DICT, QRDN, QRES, INIC must; MANU must not).
    pub fn key_rule(self) -> KeyRule {
        match self {
            InitiationType::Manu => KeyRule::Forbidden,
            InitiationType::Dict | InitiationType::Qrdn | InitiationType::Qres | InitiationType::Inic => {
                KeyRule::Required
            }
            InitiationType::Apdn | InitiationType::Auto => KeyRule::Optional,
        }
    }

    /// The txid lengths allowed, `None` meaning no txid may be sent.
    pub fn txid_lengths(self) -> Option<std::ops::RangeInclusive<usize>> {
        match self {
            InitiationType::Manu | InitiationType::Dict => None,
            InitiationType::Qrdn => Some(26..=35),
            InitiationType::Qres | InitiationType::Inic => Some(1..=25),
            InitiationType::Apdn | InitiationType::Auto => Some(1..=35),
        }
    }
}

/// Whether a payment's initiation type needs a Pix key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRule {
    Required,
    Optional,
    Forbidden,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_aliases() {
        let mut f = Flags::empty();
        assert_eq!(PaymentStatus::parse("ACSC", &mut f), Some(PaymentStatus::Acsc));
        assert!(f.is_empty());
        assert_eq!(PaymentStatus::parse("acsc", &mut f), Some(PaymentStatus::Acsc));
        assert!(f.contains(SoftRule::EnumCaseNormalized));
        let mut f = Flags::empty();
        assert_eq!(AccountType::parse("Corrente", &mut f), Some(AccountType::Cacc));
        assert_eq!(AccountType::parse("POUPANÇA", &mut f), Some(AccountType::Svgs));
        assert!(f.contains(SoftRule::AccountTypeMapped));
        assert_eq!(AccountType::parse("CHECKING", &mut f), None);
        assert_eq!(RefundStatus::parse("devolvido", &mut f), Some(RefundStatus::Devolvido));
        assert_eq!(InitiationType::allowed(), "MANU, DICT, QRDN, QRES, INIC, APDN, AUTO");
    }
}
