//! Synthetic people and companies: valid CPFs/CNPJs, Brazilian names, accounts at real
//! participants weighted toward the large banks, and Pix keys of every type.
//!
//! A party is a pure function of (seed, population, index): the same customer comes back with
//! the same document, name, account and key every time it is drawn, without keeping a table.

use crate::pix::documents::{cnpj_check_digits, cpf_check_digits};
use crate::pix::ids::Uuid36;
use crate::pix::keys::PixKeyType;

/// Real SPI participants (BCB `ParticipantesSTR.csv`) with a weight ≈ their share of Pix traffic.
/// The Banco Central itself (00038166) is never a payer or payee and is not listed.
pub const PARTICIPANTS: &[(&str, &str, u32)] = &[
    ("18236120", "Nu Pagamentos", 180),
    ("60701190", "Itaú Unibanco", 100),
    ("60746948", "Bradesco", 90),
    ("00360305", "Caixa", 90),
    ("00000000", "Banco do Brasil", 90),
    ("90400888", "Santander", 70),
    ("00416968", "Banco Inter", 50),
    ("22896431", "PicPay", 50),
    ("10573521", "Mercado Pago", 50),
    ("31872495", "C6", 40),
    ("08561701", "PagSeguro", 30),
    ("02038232", "Sicoob", 30),
    ("01181521", "Sicredi", 20),
    ("30306294", "BTG Pactual", 20),
    ("16501555", "Stone", 20),
    ("92702067", "Banrisul", 10),
    ("59285411", "Pan", 10),
    ("58160789", "Safra", 8),
    ("33264668", "Banco XP", 8),
    ("10664513", "Agibank", 8),
    ("00000208", "BRB", 6),
    ("07237373", "Banco do Nordeste", 6),
    ("92894922", "Banco Original", 5),
    ("04902979", "Banco da Amazônia", 3),
];

const FIRST: &[&str] = &[
    "Maria",
    "José",
    "Ana",
    "João",
    "Francisca",
    "Antônio",
    "Antonia",
    "Francisco",
    "Adriana",
    "Carlos",
    "Juliana",
    "Paulo",
    "Márcia",
    "Pedro",
    "Fernanda",
    "Lucas",
    "Patrícia",
    "Luiz",
    "Aline",
    "Marcos",
    "Camila",
    "Gabriel",
    "Bruna",
    "Rafael",
    "Letícia",
    "Daniel",
    "Beatriz",
    "Mateus",
    "Larissa",
    "Gustavo",
    "Sandra",
    "Felipe",
    "Vitória",
    "Rodrigo",
    "Jéssica",
];
const LAST: &[&str] = &[
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
    "Soares",
    "Fernandes",
    "Vieira",
    "Barbosa",
    "Rocha",
    "Dias",
    "Nascimento",
    "Andrade",
    "Moreira",
    "Nunes",
    "Marques",
    "Machado",
    "Mendes",
    "Freitas",
    "Cardoso",
    "Ramos",
    "Gonçalves",
    "Santana",
];
const BUSINESS: &[&str] = &[
    "Padaria",
    "Mercado",
    "Farmácia",
    "Auto Peças",
    "Restaurante",
    "Loja",
    "Papelaria",
    "Açougue",
    "Pet Shop",
    "Academia",
    "Distribuidora",
    "Oficina",
    "Salão",
    "Lanchonete",
    "Comércio",
    "Materiais de Construção",
];
const PLACES: &[&str] = &[
    "São Jorge",
    "Boa Vista",
    "Central",
    "do Povo",
    "Bela Vista",
    "Santa Luzia",
    "Estrela",
    "Nova Esperança",
    "Ipiranga",
    "Paulista",
    "Recife",
    "Aurora",
    "Horizonte",
    "Primavera",
];
const DOMAINS: &[&str] =
    &["gmail.com", "hotmail.com", "outlook.com", "yahoo.com.br", "uol.com.br", "bol.com.br", "icloud.com"];
const DDDS: &[u32] = &[11, 11, 11, 21, 21, 31, 41, 51, 61, 71, 81, 85, 19, 27, 48, 62, 91, 92, 98, 13];

/// SplitMix64: a fast, well-mixed hash of a 64-bit state, used to derive parties from indices.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A deterministic stream of numbers derived from one seed (for deriving a party's attributes).
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = splitmix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, per_thousand: u64) -> bool {
        self.below(1000) < per_thousand
    }
}

/// A person or company with an account and one Pix key.
#[derive(Clone, Debug)]
pub struct Party {
    /// Index in its population (stable identity).
    pub index: u64,
    /// Institution.
    pub ispb: &'static str,
    /// Branch, 4 digits.
    pub branch: String,
    /// Account number.
    pub account: String,
    /// CACC / SVGS / TRAN.
    pub account_type: &'static str,
    /// CPF (11 digits) or CNPJ (14 characters).
    pub document: String,
    /// Whether the document is a CNPJ.
    pub is_company: bool,
    /// Holder's name.
    pub name: String,
    /// The party's Pix key and its type.
    pub key: String,
    pub key_type: PixKeyType,
    /// The device the party usually pays from.
    pub device_id: String,
}

/// Picks a participant by weight from a uniform `u` in [0, total weight).
pub fn participant_by_weight(u: u64) -> &'static str {
    let total: u64 = PARTICIPANTS.iter().map(|p| u64::from(p.2)).sum();
    let mut x = u % total;
    for (ispb, _, w) in PARTICIPANTS {
        if x < u64::from(*w) {
            return ispb;
        }
        x -= u64::from(*w);
    }
    PARTICIPANTS[0].0
}

/// A valid CPF from a random number.
pub fn cpf(r: u64) -> String {
    let mut base = [0u8; 9];
    let mut v = r % 1_000_000_000;
    for d in base.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    if base.iter().all(|&c| c == base[0]) {
        base[8] = b'0' + (base[8] - b'0' + 1) % 10;
    }
    let check = cpf_check_digits(&base);
    let mut s = String::from_utf8_lossy(&base).into_owned();
    s.push(check[0] as char);
    s.push(check[1] as char);
    s
}

/// A valid CNPJ (headquarters, `0001`) from a random number; alphanumeric (2026 form) when
/// `alphanumeric` is set.
pub fn cnpj(r: u64, alphanumeric: bool) -> String {
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut base = *b"000000000001";
    let mut v = r;
    for d in base[..8].iter_mut().rev() {
        *d = if alphanumeric { ALNUM[(v % 36) as usize] } else { b'0' + (v % 10) as u8 };
        v /= if alphanumeric { 36 } else { 10 };
    }
    let check = cnpj_check_digits(&base);
    let mut s = String::from_utf8_lossy(&base).into_owned();
    s.push(check[0] as char);
    s.push(check[1] as char);
    s
}

/// A Brazilian mobile number in E.164.
pub fn phone(r: u64) -> String {
    let ddd = DDDS[(r % DDDS.len() as u64) as usize];
    format!("+55{ddd}9{:08}", (r >> 8) % 100_000_000)
}

fn strip_accents(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'á' | 'â' | 'ã' | 'à' => 'a',
            'é' | 'ê' => 'e',
            'í' => 'i',
            'ó' | 'ô' | 'õ' => 'o',
            'ú' | 'ü' => 'u',
            'ç' => 'c',
            c => c,
        })
        .collect()
}

/// A population of parties derived from `seed`: customers of one institution (`home` set) or
/// counterparties spread over all participants.
#[derive(Clone, Copy, Debug)]
pub struct Population {
    /// Derivation seed (distinct per population).
    pub seed: u64,
    /// Number of parties.
    pub size: u64,
    /// Institution of every party, or `None` for a weighted mix.
    pub home: Option<&'static str>,
    /// Share of companies, per thousand.
    pub companies_per_thousand: u64,
}

impl Population {
    /// The party at `index` (taken modulo the size).
    pub fn party(&self, index: u64) -> Party {
        let index = index % self.size.max(1);
        let mut s = Stream(splitmix(self.seed ^ index.wrapping_mul(0x2545_f491_4f6c_dd1d)));
        let is_company = s.chance(self.companies_per_thousand);
        let ispb = match self.home {
            Some(h) => h,
            None => participant_by_weight(s.next()),
        };
        let (document, name) = if is_company {
            let alnum = s.chance(30);
            let name = format!("{} {} Ltda", s.pick(BUSINESS), s.pick(PLACES));
            (cnpj(s.next(), alnum), name)
        } else {
            let name = format!("{} {} {}", s.pick(FIRST), s.pick(LAST), s.pick(LAST));
            (cpf(s.next()), name)
        };
        let key_type = if is_company {
            if s.chance(600) { PixKeyType::Cnpj } else { PixKeyType::Evp }
        } else {
            match s.below(100) {
                0..=29 => PixKeyType::Cpf,
                30..=54 => PixKeyType::Phone,
                55..=74 => PixKeyType::Email,
                _ => PixKeyType::Evp,
            }
        };
        let key = match key_type {
            PixKeyType::Cpf | PixKeyType::Cnpj => document.clone(),
            PixKeyType::Phone => phone(s.next()),
            PixKeyType::Email => {
                let first = strip_accents(&name.split(' ').next().unwrap_or("pix").to_lowercase());
                format!("{first}.{}{}@{}", s.below(1000), if s.chance(500) { "" } else { "x" }, s.pick(DOMAINS))
            }
            PixKeyType::Evp => {
                Uuid36::from_random(u128::from(s.next()) << 64 | u128::from(s.next())).as_str().to_owned()
            }
        };
        let account_type = match s.below(10) {
            0..=6 => "CACC",
            7 => "SVGS",
            _ => "TRAN",
        };
        Party {
            index,
            ispb,
            branch: format!("{:04}", 1 + s.below(4000)),
            account: format!("{}", 10_000 + s.below(99_990_000)),
            account_type,
            document,
            is_company,
            name,
            key,
            key_type,
            device_id: format!("dev-{:016x}", s.next()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pix::documents::{cnpj_is_valid, cpf_is_valid};
    use crate::pix::keys::check_key;
    use crate::pix::rules::Flags;
    use std::borrow::Cow;

    #[test]
    fn documents_are_valid() {
        for r in 0..2000u64 {
            let r = splitmix(r);
            assert!(cpf_is_valid(cpf(r).as_bytes()), "{}", cpf(r));
            assert!(cnpj_is_valid(cnpj(r, false).as_bytes()));
            assert!(cnpj_is_valid(cnpj(r, true).as_bytes()), "{}", cnpj(r, true));
        }
    }

    #[test]
    fn parties_are_stable_and_keys_valid() {
        let pop = Population { seed: 7, size: 1000, home: None, companies_per_thousand: 300 };
        for i in 0..1000 {
            let a = pop.party(i);
            assert_eq!(a.document, pop.party(i).document);
            assert_ne!(a.ispb, "00038166");
            let mut flags = Flags::empty();
            let k = check_key(Cow::Borrowed(&a.key), a.key_type, &mut flags);
            assert!(k.is_ok() && flags.is_empty(), "{} {:?} {:?}", a.key, a.key_type, k);
        }
    }
}
