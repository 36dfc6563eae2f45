//! The traffic generator: a deterministic stream of Pix events as one institution sees them —
//! its customers' payments, receipts into their accounts, and refunds of both.
//!
//! Time is simulated: events arrive as a Poisson process whose rate follows the day (quiet at
//! 03:00, busiest around noon and 19:00, America/Sao_Paulo), so a run shows day/night patterns
//! whatever its wall-clock speed. Amounts are log-normal (median ≈ R$ 55, mean ≈ R$ 257).
//! Fraud episodes ([`FraudPattern`]) are scheduled into the future and interleaved in time order.
//! A fraction of records is made invalid on purpose ([`super::corrupt`]), cycling through every
//! hard rule so that a modest run covers them all.
//!
//! Everything derives from the seed: same settings, same bytes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use serde_json::Value;

use super::corrupt;
use super::people::{Party, Population};
use super::wire::{WireData, WireEvent, WireParty, WirePayment, WireReceipt, WireRefund, amount_str};
use crate::pix::Category;
use crate::pix::ids::Uuid36;
use crate::pix::keys::PixKeyType;
use crate::pix::rules::HardRule;
use crate::pix::time::{DAY, HOUR, MINUTE, Micros, civil_from_days, format_rfc3339, sao_paulo_offset};

/// Generator settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Seed of every random choice.
    pub seed: u64,
    /// Share of records made invalid (0–1).
    pub invalid_ratio: f64,
    /// Share of records belonging to fraud episodes (0–1).
    pub fraud_ratio: f64,
    /// Simulated time of the first event.
    pub start: Micros,
    /// Simulated traffic volume (sets how fast simulated time runs per event).
    pub events_per_day: f64,
    /// ISPB of the institution whose view is simulated.
    pub institution: &'static str,
    /// The validation limit, so oversized records are just over it.
    pub max_message_bytes: usize,
}

/// The simulated start `pixlake produce` uses by default (fixed, so output is reproducible).
pub const DEFAULT_START: &str = "2026-11-01T00:00:00-03:00";

impl Default for Settings {
    /// `pixlake produce`'s defaults: seed 42, no invalid records, 0.5 % fraud, 1 000 000 events
    /// per simulated day from [`DEFAULT_START`], as Nu Pagamentos, 1 MiB validation limit.
    fn default() -> Self {
        Settings {
            seed: 42,
            invalid_ratio: 0.0,
            fraud_ratio: 0.005,
            start: crate::pix::time::parse_rfc3339(DEFAULT_START).unwrap_or_default(),
            events_per_day: 1_000_000.0,
            institution: "18236120",
            max_message_bytes: crate::pix::event::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// Fraud patterns (pix-domain.md, "patterns worth generating").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FraudPattern {
    /// Account takeover: a burst of night payments just under the R$ 1,000 night limit.
    NightBurst,
    /// Payments of R$ 200 (the new-device limit) from a device never seen before.
    NewDevice,
    /// Many payers sending to one freshly registered key (a mule account).
    Mule,
    /// A MED fraud refund (FR01) hours or days after the payment it returns.
    MedRefund,
}

impl FraudPattern {
    /// Label used in `--labels` files.
    pub fn as_str(self) -> &'static str {
        match self {
            FraudPattern::NightBurst => "night_burst",
            FraudPattern::NewDevice => "new_device",
            FraudPattern::Mule => "mule",
            FraudPattern::MedRefund => "med_refund",
        }
    }
}

/// One generated Kafka record.
#[derive(Clone, Debug)]
pub struct Record {
    /// The category whose topic it is published to (differs from `event_type` for
    /// `TOPIC_MISMATCH` records).
    pub category: Category,
    /// Message key: the EndToEndId (a refund's original EndToEndId).
    pub key: String,
    /// Message value.
    pub value: Vec<u8>,
    /// The hard rule this record was built to break, if any.
    pub invalid: Option<HardRule>,
    /// The fraud episode this record belongs to, if any.
    pub fraud: Option<FraudPattern>,
    /// Simulated event time.
    pub time: Micros,
}

/// Relative traffic by local hour (00–23, America/Sao_Paulo).
const HOURLY: [f64; 24] = [
    0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.60, 0.90, 1.20, 1.40, 1.50, 1.50, 1.40, 1.35, 1.30, 1.30, 1.35, 1.45,
    1.50, 1.40, 1.10, 0.80, 0.50,
];

const REJECT_REASONS: &[&str] =
    &["AB03", "AC03", "AC06", "AC07", "AC14", "AM02", "AM04", "AM09", "BE01", "BE17", "DS04", "FRAD", "RR04"];
const REMITTANCE: &[&str] = &[
    "aluguel",
    "almoço",
    "presente",
    "conta de luz",
    "mensalidade",
    "obrigado!",
    "rachadinha do churrasco",
    "pedido 1234",
];

/// A transaction kept for later refunds.
#[derive(Clone, Debug)]
struct Past {
    e2e: String,
    amount: i64,
    refunded: i64,
    time: Micros,
    /// A payment by one of our customers (else a receipt into one of their accounts).
    outgoing: bool,
    counterpart_ispb: &'static str,
}

/// Something scheduled for a later simulated time.
#[derive(Debug)]
struct Pending {
    at: Micros,
    seq: u64,
    what: Planned,
}

#[derive(Debug)]
enum Planned {
    Payment { payer: u64, payee: Box<Party>, amount: i64, device: Option<String>, fraud: FraudPattern, then_med: bool },
    Receipt { payer: u64, payee: Box<Party>, amount: i64 },
    MedRefund { original: Box<Past> },
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The event generator; an infinite iterator of [`Record`]s.
pub struct Generator {
    s: Settings,
    rng: ChaCha8Rng,
    next_base: Micros,
    clock: Micros,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    customers: Population,
    counterparties: Population,
    mules: Population,
    fresh: u64,
    recent: VecDeque<Past>,
    amounts: LogNormal<f64>,
    invalid_plan: Vec<HardRule>,
    plan_pos: usize,
}

/// How many past transactions are remembered for refunds.
const RECENT: usize = 50_000;

impl Generator {
    /// A generator for `settings`.
    pub fn new(settings: Settings) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let invalid_plan = corrupt::plan(&mut rng);
        let base = settings.seed.wrapping_mul(0x9e37_79b9);
        let institution = settings.institution;
        Generator {
            next_base: settings.start,
            clock: settings.start,
            customers: Population {
                seed: base ^ 1,
                size: 200_000,
                home: Some(institution),
                companies_per_thousand: 50,
            },
            counterparties: Population { seed: base ^ 2, size: 2_000_000, home: None, companies_per_thousand: 330 },
            mules: Population { seed: base ^ 3, size: u64::MAX, home: Some(institution), companies_per_thousand: 0 },
            fresh: 0,
            s: settings,
            rng,
            pending: BinaryHeap::new(),
            seq: 0,
            recent: VecDeque::with_capacity(RECENT),
            // Median R$ 55 (μ = ln 55), σ chosen so the mean is ≈ R$ 257 (e^{σ²/2} ≈ 4.67).
            amounts: LogNormal::new(55f64.ln(), 1.755)
                .unwrap_or_else(|_| unreachable!("constant parameters are valid")),
            invalid_plan,
            plan_pos: 0,
        }
    }

    /// Simulated time of the last record.
    pub fn clock(&self) -> Micros {
        self.clock
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    fn schedule(&mut self, at: Micros, what: Planned) {
        self.seq += 1;
        self.pending.push(Reverse(Pending { at, seq: self.seq, what }));
    }

    /// Draws the gap to the next background event from the hour's rate.
    fn advance_base(&mut self) {
        let mean_weight = HOURLY.iter().sum::<f64>() / 24.0;
        let (_, hour) = crate::pix::time::sao_paulo_date_hour(self.next_base);
        let rate_per_sec = self.s.events_per_day / 86_400.0 * HOURLY[hour as usize] / mean_weight;
        let u: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
        let gap = (-u.ln() / rate_per_sec * 1e6) as Micros;
        self.next_base += gap.max(1);
    }

    fn amount(&mut self) -> i64 {
        let reais = self.amounts.sample(&mut self.rng).clamp(0.01, 50_000.0);
        ((reais * 100.0).round() as i64).max(1)
    }

    fn e2e(&mut self, letter: char, ispb: &str, t: Micros) -> String {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let days = t.div_euclid(DAY);
        let rem = t.rem_euclid(DAY);
        let (y, m, d) = civil_from_days(days);
        let mut s = format!("{letter}{ispb}{y:04}{m:02}{d:02}{:02}{:02}", rem / HOUR, rem / MINUTE % 60);
        for _ in 0..11 {
            s.push(ALNUM[self.rng.random_range(0..ALNUM.len())] as char);
        }
        s
    }

    fn time_text(&mut self, t: Micros) -> String {
        let t = t - t.rem_euclid(1000);
        if self.chance(0.25) {
            let off = sao_paulo_offset(t);
            let local = format_rfc3339(t + off);
            let sign = if off < 0 { '-' } else { '+' };
            let mins = off.abs() / MINUTE;
            format!("{}{sign}{:02}:{:02}", local.trim_end_matches('Z'), mins / 60, mins % 60)
        } else {
            format_rfc3339(t)
        }
    }

    fn event_id(&mut self) -> String {
        Uuid36::from_random(self.rng.random::<u128>()).as_str().to_owned()
    }

    /// The wire form of a party; moves its strings (a party is built per event, cloning them
    /// again showed in profiles).
    fn wire_party(p: Party) -> WireParty {
        WireParty {
            ispb: Value::String(p.ispb.to_owned()),
            branch: Some(p.branch),
            account: Some(p.account),
            account_type: Some(p.account_type.to_owned()),
            document: Some(p.document),
            name: Some(p.name),
        }
    }

    fn envelope(&mut self, category: Category, t: Micros, data: WireData) -> WireEvent {
        WireEvent {
            event_id: self.event_id(),
            event_type: category.as_str().to_owned(),
            schema_version: Value::from(1),
            source: Some(if category == Category::Receipt { "bank-api" } else { "spi-log" }.to_owned()),
            event_time: self.time_text(t),
            data,
            trace_id: None,
        }
    }

    fn remember(&mut self, past: Past) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(past);
    }

    /// A payment by customer `payer` to `payee`; returns the event and its EndToEndId.
    fn payment(
        &mut self,
        t: Micros,
        payer: u64,
        payee: Party,
        amount: i64,
        device: Option<String>,
    ) -> (WireEvent, String) {
        let payer = self.customers.party(payer);
        let payee_ispb = payee.ispb;
        let created = t - self.rng.random_range(0..2_000_000);
        let e2e = self.e2e('E', payer.ispb, created);
        let initiation = match self.rng.random_range(0..100) {
            0..=69 => "DICT",
            70..=79 => "QRDN",
            80..=87 => "QRES",
            88..=94 => "MANU",
            95..=97 => "INIC",
            98 => "APDN",
            _ => "AUTO",
        };
        let txid = match initiation {
            "QRDN" => Some(self.alnum(26, 35)),
            "QRES" if self.chance(0.5) => Some("***".to_owned()),
            "QRES" | "INIC" => Some(self.alnum(1, 25)),
            _ => None,
        };
        let (status, reject_reason) = match self.rng.random_range(0..1000) {
            0..=19 => ("RJCT", Some(self.pick(REJECT_REASONS).to_string())),
            20..=49 => ("ACSP", None),
            _ => ("ACSC", None),
        };
        let with_key = initiation != "MANU";
        let channel = match self.rng.random_range(0..100) {
            0..=79 => "APP",
            80..=87 => "WEB",
            88..=94 => "API",
            95..=97 => "ATM",
            _ => "BRANCH",
        };
        let device = if channel == "APP" { Some(device.unwrap_or_else(|| payer.device_id.clone())) } else { None };
        let remittance_info = if self.chance(0.15) { Some(self.pick(REMITTANCE).to_string()) } else { None };
        let data = WirePayment {
            end_to_end_id: e2e.clone(),
            txid,
            amount: amount_str(amount),
            currency: "BRL".into(),
            initiation_type: initiation.into(),
            status: status.into(),
            reject_reason,
            pix_key: with_key.then(|| payee.key.clone()),
            pix_key_type: with_key.then(|| payee.key_type.as_str().to_owned()),
            payer: Self::wire_party(payer),
            payee: Self::wire_party(payee),
            remittance_info,
            channel: Some(channel.into()),
            device_id: device,
        };
        let ev = self.envelope(Category::Payment, t, WireData::Payment(data));
        if status != "RJCT" {
            self.remember(Past {
                e2e: e2e.clone(),
                amount,
                refunded: 0,
                time: created,
                outgoing: true,
                counterpart_ispb: payee_ispb,
            });
        }
        (ev, e2e)
    }

    /// A receipt from counterparty `payer` into `payee` (one of ours).
    fn receipt(&mut self, t: Micros, payer: u64, payee: Party, amount: i64) -> (WireEvent, String) {
        let payer = self.counterparties.party(payer);
        let received = t - self.rng.random_range(0..3_000_000);
        let created = received - self.rng.random_range(0..2_000_000);
        let e2e = self.e2e('E', payer.ispb, created);
        let txid = if self.chance(0.2) { Some(self.alnum(26, 35)) } else { None };
        let data = WireReceipt {
            end_to_end_id: e2e.clone(),
            txid,
            amount: amount_str(amount),
            pix_key: payee.key.clone(),
            pix_key_type: if self.chance(0.9) { Some(payee.key_type.as_str().to_owned()) } else { None },
            payer: WireParty {
                ispb: Value::String(payer.ispb.to_owned()),
                branch: None,
                account: None,
                account_type: None,
                document: Some(payer.document.clone()),
                name: Some(payer.name.clone()),
            },
            payee: Self::wire_party(payee),
            payer_info: if self.chance(0.1) { Some(self.pick(REMITTANCE).to_string()) } else { None },
            received_at: self.time_text(received),
        };
        let ev = self.envelope(Category::Receipt, t, WireData::Receipt(data));
        self.remember(Past {
            e2e: e2e.clone(),
            amount,
            refunded: 0,
            time: created,
            outgoing: false,
            counterpart_ispb: payer.ispb,
        });
        (ev, e2e)
    }

    /// A refund of `original`; `reason` forced for MED episodes.
    fn refund(&mut self, t: Micros, original: &mut Past, reason: Option<&'static str>) -> (WireEvent, String) {
        let reason = reason.unwrap_or_else(|| match self.rng.random_range(0..100) {
            0..=84 => "MD06",
            85..=89 => "BE08",
            90..=92 => "SL02",
            _ => "FR01",
        });
        let remaining = (original.amount - original.refunded).max(1);
        let amount = if self.chance(0.7) { remaining } else { self.rng.random_range(1..=remaining) };
        original.refunded += amount;
        let requested = (t - self.rng.random_range(5_000_000..60_000_000)).max(original.time + 1_000_000);
        let (direction, returner) =
            if original.outgoing { ("RECEIVED", original.counterpart_ispb) } else { ("SENT", self.s.institution) };
        let return_id = self.e2e('D', returner, requested);
        let (status, settled) = match self.rng.random_range(0..100) {
            0..=84 => ("DEVOLVIDO", Some(requested + self.rng.random_range(1_000_000..(t - requested).max(1_000_001)))),
            85..=94 => ("EM_PROCESSAMENTO", None),
            _ => ("NAO_REALIZADO", None),
        };
        let data = WireRefund {
            return_id,
            original_end_to_end_id: original.e2e.clone(),
            refund_request_id: if self.chance(0.6) { Some(self.alnum(10, 35)) } else { None },
            direction: direction.into(),
            amount: amount_str(amount),
            reason_code: reason.into(),
            status: status.into(),
            requested_at: self.time_text(requested),
            settled_at: settled.map(|s| self.time_text(s)),
            description: if reason == "FR01" { Some("MED: fraude reportada pelo pagador".into()) } else { None },
        };
        let key = original.e2e.clone();
        (self.envelope(Category::Refund, t, WireData::Refund(data)), key)
    }

    fn alnum(&mut self, min: usize, max: usize) -> String {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let n = self.rng.random_range(min..=max);
        (0..n).map(|_| ALNUM[self.rng.random_range(0..ALNUM.len())] as char).collect()
    }

    /// A valid background event of `category` at `t` (a payment if no past transaction exists
    /// for a refund).
    pub(super) fn valid_event(&mut self, category: Category, t: Micros) -> (WireEvent, String) {
        match category {
            Category::Refund if !self.recent.is_empty() => {
                let i = self.rng.random_range(0..self.recent.len());
                let mut past = self.recent[i].clone();
                let out = self.refund(t, &mut past, None);
                self.recent[i] = past;
                out
            }
            Category::Receipt => {
                let payer = self.rng.random_range(0..self.counterparties.size);
                let payee = self.customers.party(self.rng.random_range(0..self.customers.size));
                let amount = self.amount();
                self.receipt(t, payer, payee, amount)
            }
            _ => {
                let payer = self.rng.random_range(0..self.customers.size);
                let payee = self.counterparties.party(self.rng.random_range(0..self.counterparties.size));
                let amount = self.amount();
                self.payment(t, payer, payee, amount, None)
            }
        }
    }

    fn random_category(&mut self) -> Category {
        match self.rng.random_range(0..100) {
            0..=46 => Category::Payment,
            47..=93 => Category::Receipt,
            _ => Category::Refund,
        }
    }

    /// The next hard rule to break, cycling through all of them.
    fn next_invalid_rule(&mut self) -> HardRule {
        let rule = self.invalid_plan[self.plan_pos % self.invalid_plan.len()];
        self.plan_pos += 1;
        rule
    }

    /// Starts a fraud episode at `t`: schedules its events.
    fn start_fraud(&mut self, t: Micros) {
        let pattern = *self.pick(&[
            FraudPattern::NightBurst,
            FraudPattern::NewDevice,
            FraudPattern::Mule,
            FraudPattern::MedRefund,
        ]);
        match pattern {
            FraudPattern::NightBurst => {
                // At night (20:00–06:00 local): now if it is night, else tonight from 22:00.
                let (_, hour) = crate::pix::time::sao_paulo_date_hour(t);
                // A burst lasts at most 80 minutes: start before 03:00 so it ends by 06:00.
                let start = if !(3..20).contains(&hour) {
                    t
                } else {
                    t + i64::from(22 - hour) * HOUR + self.rng.random_range(0..3 * HOUR)
                };
                let payer = self.rng.random_range(0..self.customers.size);
                self.fresh += 1;
                let mule = self.mules.party(self.fresh);
                let mut at = start;
                for i in 0..self.rng.random_range(3..=8) {
                    at += self.rng.random_range(MINUTE..10 * MINUTE);
                    let amount = self.rng.random_range(90_000..100_000);
                    let planned = Planned::Payment {
                        payer,
                        payee: Box::new(mule.clone()),
                        amount,
                        device: None,
                        fraud: pattern,
                        then_med: i == 0 && self.chance(0.5),
                    };
                    self.schedule(at, planned);
                }
            }
            FraudPattern::NewDevice => {
                let payer = self.rng.random_range(0..self.customers.size);
                let device = format!("dev-new-{:012x}", self.rng.random::<u64>() >> 16);
                let mut at = t;
                for _ in 0..self.rng.random_range(2..=5) {
                    at += self.rng.random_range(MINUTE..15 * MINUTE);
                    let payee = Box::new(self.counterparties.party(self.rng.random_range(0..self.counterparties.size)));
                    let amount = if self.chance(0.6) { 20_000 } else { self.rng.random_range(19_000..20_000) };
                    self.schedule(
                        at,
                        Planned::Payment {
                            payer,
                            payee,
                            amount,
                            device: Some(device.clone()),
                            fraud: pattern,
                            then_med: false,
                        },
                    );
                }
            }
            FraudPattern::Mule => {
                self.fresh += 1;
                let mut mule = self.mules.party(self.fresh);
                mule.key_type = PixKeyType::Evp;
                mule.key = Uuid36::from_random(self.rng.random::<u128>()).as_str().to_owned();
                let mule = Box::new(mule);
                let mut at = t;
                for _ in 0..self.rng.random_range(5..=15) {
                    at += self.rng.random_range(10_000_000..4 * MINUTE);
                    let payer = self.rng.random_range(0..self.counterparties.size);
                    let amount = self.rng.random_range(30_000..300_000);
                    self.schedule(at, Planned::Receipt { payer, payee: mule.clone(), amount });
                }
            }
            FraudPattern::MedRefund => {
                let Some(original) = self.recent.iter().rev().find(|p| p.outgoing).cloned() else {
                    return;
                };
                let delay = self.med_delay();
                self.schedule(original.time + delay, Planned::MedRefund { original: Box::new(original) });
            }
        }
    }

    /// MED claims come hours to days after the payment (log-uniform between 2 h and 3 days).
    fn med_delay(&mut self) -> Micros {
        let lo = (2.0 * HOUR as f64).ln();
        let hi = (3.0 * DAY as f64).ln();
        (lo + (hi - lo) * self.rng.random::<f64>()).exp() as Micros
    }

    fn emit_planned(&mut self, at: Micros, what: Planned) -> Record {
        let (event, key, fraud) = match what {
            Planned::Payment { payer, payee, amount, device, fraud, then_med } => {
                let (ev, key) = self.payment(at, payer, *payee, amount, device);
                if then_med && let Some(p) = self.recent.back().cloned() {
                    let delay = self.med_delay();
                    self.schedule(p.time + delay, Planned::MedRefund { original: Box::new(p) });
                }
                (ev, key, fraud)
            }
            Planned::Receipt { payer, payee, amount } => {
                let (ev, key) = self.receipt(at, payer, *payee, amount);
                (ev, key, FraudPattern::Mule)
            }
            Planned::MedRefund { mut original } => {
                let (ev, key) = self.refund(at, &mut original, Some("FR01"));
                (ev, key, FraudPattern::MedRefund)
            }
        };
        self.finish(event, key, None, Some(fraud), at)
    }

    fn finish(
        &mut self,
        mut event: WireEvent,
        key: String,
        invalid: Option<HardRule>,
        fraud: Option<FraudPattern>,
        t: Micros,
    ) -> Record {
        let category = Category::from_event_type(&event.event_type).unwrap_or(Category::Payment);
        if invalid.is_none() && self.chance(0.03) {
            corrupt::messy(&mut self.rng, &mut event);
        }
        let mut value = Vec::with_capacity(1024);
        let _ = serde_json::to_writer(&mut value, &event);
        Record { category, key, value, invalid, fraud, time: t }
    }

    fn invalid_record(&mut self, t: Micros) -> Record {
        let rule = self.next_invalid_rule();
        let category = corrupt::category_for(rule).unwrap_or_else(|| self.random_category());
        let (mut event, _) = self.valid_event(category, t);
        let max = self.s.max_message_bytes;
        let published = corrupt::apply(&mut self.rng, rule, &mut event);
        // Keyed by the (possibly corrupted) id the value carries, as its producer would.
        let key = match &event.data {
            WireData::Payment(p) => p.end_to_end_id.clone(),
            WireData::Receipt(r) => r.end_to_end_id.clone(),
            WireData::Refund(r) => r.original_end_to_end_id.clone(),
        };
        let mut value = serde_json::to_vec(&event).unwrap_or_default();
        corrupt::apply_bytes(&mut self.rng, rule, &mut value, max);
        Record { category: published.unwrap_or(category), key, value, invalid: Some(rule), fraud: None, time: t }
    }
}

impl Iterator for Generator {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if let Some(Reverse(top)) = self.pending.peek()
            && top.at <= self.next_base
        {
            let Reverse(p) = self.pending.pop()?;
            self.clock = self.clock.max(p.at);
            return Some(self.emit_planned(self.clock, p.what));
        }
        let t = self.next_base;
        self.clock = t;
        self.advance_base();
        if self.chance(self.s.invalid_ratio) {
            return Some(self.invalid_record(t));
        }
        // Episodes average ~5 events: start one often enough that `fraud_ratio` of the records
        // belong to one.
        if self.s.fraud_ratio > 0.0 && self.chance(self.s.fraud_ratio / 5.0) {
            self.start_fraud(t);
        }
        let category = self.random_category();
        let (event, key) = self.valid_event(category, t);
        Some(self.finish(event, key, None, None, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pix::time::parse_rfc3339;
    use crate::pix::{Decoder, EventData};

    fn settings(seed: u64, invalid: f64, fraud: f64) -> Settings {
        Settings {
            seed,
            invalid_ratio: invalid,
            fraud_ratio: fraud,
            events_per_day: 100_000.0,
            max_message_bytes: 4096,
            ..Settings::default()
        }
    }

    #[test]
    fn defaults_match_the_command_line() {
        let d = Settings::default();
        assert_eq!(d.start, parse_rfc3339(DEFAULT_START).unwrap());
        assert_eq!((d.seed, d.fraud_ratio, d.invalid_ratio), (42, 0.005, 0.0));
    }

    #[test]
    fn every_record_gets_the_verdict_it_was_built_for() {
        let decoder = Decoder::new(4096);
        let now = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in Generator::new(settings(7, 0.3, 0.05)).take(30_000).enumerate() {
            let verdict = decoder.decode(Some(&r.value), Some(r.category), now);
            match (r.invalid, verdict) {
                (None, Ok(_)) => {}
                (Some(rule), Err(rej)) if rej.rule == rule => {
                    seen.insert(rule);
                }
                (intended, got) => panic!(
                    "record {i}: built for {intended:?}, got {got:?}\n{}",
                    String::from_utf8_lossy(&r.value[..r.value.len().min(2000)])
                ),
            }
        }
        for rule in HardRule::ALL.iter().filter(|r| !r.source_only()) {
            assert!(seen.contains(rule), "{rule} never generated");
        }
    }

    #[test]
    fn same_seed_same_bytes() {
        let a: Vec<Vec<u8>> = Generator::new(settings(1, 0.05, 0.01)).take(3000).map(|r| r.value).collect();
        let b: Vec<Vec<u8>> = Generator::new(settings(1, 0.05, 0.01)).take(3000).map(|r| r.value).collect();
        let c: Vec<Vec<u8>> = Generator::new(settings(2, 0.05, 0.01)).take(3000).map(|r| r.value).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn fraud_patterns_look_like_their_description() {
        let decoder = Decoder::default();
        let now = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let mut counts = std::collections::HashMap::new();
        for r in Generator::new(settings(3, 0.0, 0.3)).take(20_000) {
            let Some(pattern) = r.fraud else { continue };
            *counts.entry(pattern).or_insert(0) += 1;
            let ev = decoder.decode(Some(&r.value), Some(r.category), now).expect("fraud records are valid events");
            match (pattern, &ev.data) {
                (FraudPattern::NightBurst, EventData::Payment(p)) => {
                    assert!((90_000..100_000).contains(&p.amount), "just under the night limit: {}", p.amount);
                    assert!(!(6..20).contains(&ev.envelope.local_hour), "at night: {}", ev.envelope.local_hour);
                }
                (FraudPattern::NewDevice, EventData::Payment(p)) => {
                    assert!((19_000..=20_000).contains(&p.amount));
                    assert!(
                        p.device_id.as_deref().is_some_and(|d| d.starts_with("dev-new-"))
                            || p.channel != Some(crate::pix::codes::Channel::App)
                    );
                }
                (FraudPattern::Mule, EventData::Receipt(r)) => {
                    assert_eq!(r.pix_key.kind, PixKeyType::Evp)
                }
                (FraudPattern::MedRefund, EventData::Refund(r)) => {
                    assert_eq!(r.reason_code, crate::pix::codes::RefundReason::Fr01)
                }
                (p, d) => panic!("{p:?} produced {d:?}"),
            }
        }
        for p in [FraudPattern::NightBurst, FraudPattern::NewDevice, FraudPattern::Mule, FraudPattern::MedRefund] {
            assert!(counts.get(&p).copied().unwrap_or(0) > 10, "{p:?}: {counts:?}");
        }
    }

    #[test]
    fn traffic_follows_the_day() {
        // 100 000 events per simulated day: 200 000 events span about two days.
        let mut by_hour = [0u32; 24];
        for r in Generator::new(settings(5, 0.0, 0.0)).take(200_000) {
            by_hour[crate::pix::time::sao_paulo_date_hour(r.time).1 as usize] += 1;
        }
        let night = by_hour[2] + by_hour[3] + by_hour[4];
        let noon = by_hour[11] + by_hour[12] + by_hour[13];
        assert!(noon > 8 * night, "noon {noon} vs night {night}: {by_hour:?}");
    }

    #[test]
    fn refunds_reference_earlier_transactions() {
        let mut e2e_seen = std::collections::HashSet::new();
        let decoder = Decoder::default();
        let now = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let mut refunds = 0;
        for r in Generator::new(settings(9, 0.0, 0.02)).take(20_000) {
            let ev = decoder.decode(Some(&r.value), Some(r.category), now).unwrap();
            match &ev.data {
                EventData::Payment(p) => {
                    e2e_seen.insert(p.end_to_end_id.to_string());
                }
                EventData::Receipt(x) => {
                    e2e_seen.insert(x.end_to_end_id.to_string());
                }
                EventData::Refund(x) => {
                    refunds += 1;
                    assert!(e2e_seen.contains(x.original_end_to_end_id.as_ref()));
                    assert_eq!(r.key, x.original_end_to_end_id);
                }
            }
        }
        assert!(refunds > 500, "{refunds}");
    }
}
