//! The parts of SPI's pacs.008, pacs.002 and pacs.004 that pixlake reads, as serde types for
//! `quick-xml`. Element names are the catalogue's (Banco Central, *Catálogo de Mensagens do SPI*);
//! everything not named here (the signature, settlement information, priorities…) is skipped.
//!
//! A field that is not an `Option` is required: a message without it is refused with the element
//! path serde reports (`MISSING_FIELD`). Texts are kept as written (trimmed): checking them is
//! the wire rules' business at ingest, where a bad amount or ISPB is quarantined with its rule.

use serde::Deserialize;

/// Text content of an element.
#[derive(Debug, Deserialize)]
pub struct Text {
    #[serde(rename = "$text", default)]
    pub text: String,
}

/// An amount with its currency attribute: `<IntrBkSttlmAmt Ccy="BRL">6.00</IntrBkSttlmAmt>`.
#[derive(Debug, Deserialize)]
pub struct Amount {
    #[serde(rename = "@Ccy", default)]
    pub currency: Option<String>,
    #[serde(rename = "$text", default)]
    pub value: String,
}

/// `GrpHdr` (every message).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupHeader {
    pub msg_id: Text,
    pub cre_dt_tm: Text,
}

/// `…Agt/FinInstnId/ClrSysMmbId/MmbId`: a participant's ISPB.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Agent {
    pub fin_instn_id: FinInstnId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FinInstnId {
    pub clr_sys_mmb_id: ClrSysMmbId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClrSysMmbId {
    pub mmb_id: Text,
}

/// `Dbtr` / `Cdtr`: the person (CPF) or company (CNPJ) and its name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Party {
    #[serde(default)]
    pub nm: Option<Text>,
    pub id: PartyId,
}

/// `Id/PrvtId/Othr/Id` (SPI's form for CPF and CNPJ alike) or `Id/OrgId/Othr/Id`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartyId {
    #[serde(default)]
    pub prvt_id: Option<OtherId>,
    #[serde(default)]
    pub org_id: Option<OtherId>,
}

/// `<Othr><Id>…</Id></Othr>`: a party's document, or an account.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OtherId {
    pub othr: Other,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Other {
    pub id: Text,
    /// In an account: the branch (`agência`).
    #[serde(default)]
    pub issr: Option<Text>,
}

/// `DbtrAcct` / `CdtrAcct`: account number, branch, type, and (creditor) the Pix key.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    /// `Id/Othr/Id` (the account number) and `Id/Othr/Issr` (the branch).
    pub id: OtherId,
    #[serde(default)]
    pub tp: Option<Code>,
    /// `Prxy/Id`: the Pix key the payer used (absent for a manual payment).
    #[serde(default)]
    pub prxy: Option<Proxy>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Proxy {
    pub id: Text,
}

/// `<Cd>…</Cd>` or `<Prtry>…</Prtry>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Code {
    #[serde(default)]
    pub cd: Option<Text>,
    #[serde(default)]
    pub prtry: Option<Text>,
}

impl Code {
    /// The code, whichever form carries it.
    pub fn value(&self) -> Option<&str> {
        self.cd.as_ref().or(self.prtry.as_ref()).map(|t| t.text.trim()).filter(|s| !s.is_empty())
    }
}

/// `<LclInstrm><Prtry>DICT</Prtry></LclInstrm>`: the Pix initiation type (`PmtTpInf` may hold
/// only a priority, `MndtRltdInf` of a Pix Automático no `Tp`: all optional).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LocalInstrument {
    #[serde(default)]
    pub lcl_instrm: Option<Code>,
}

impl LocalInstrument {
    pub fn value(&self) -> Option<&str> {
        self.lcl_instrm.as_ref().and_then(Code::value)
    }
}

/// `MndtRltdInf/Tp` (SPI 1.13) holds the initiation type.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MandateInfo {
    #[serde(default)]
    pub tp: Option<LocalInstrument>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentId {
    pub end_to_end_id: Text,
    /// The `txid` of a QR code or Pix charge.
    #[serde(default)]
    pub tx_id: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Remittance {
    #[serde(default)]
    pub ustrd: Option<Text>,
}

/// pacs.008 `CdtTrfTxInf`: one Pix.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreditTransfer {
    pub pmt_id: PaymentId,
    /// Older catalogue versions: `PmtTpInf/LclInstrm`.
    #[serde(default)]
    pub pmt_tp_inf: Option<LocalInstrument>,
    pub intr_bk_sttlm_amt: Amount,
    /// When the payer's PSP accepted the order.
    #[serde(default)]
    pub accptnc_dt_tm: Option<Text>,
    #[serde(default)]
    pub mndt_rltd_inf: Option<MandateInfo>,
    pub dbtr: Party,
    pub dbtr_acct: Account,
    pub dbtr_agt: Agent,
    pub cdtr_agt: Agent,
    pub cdtr: Party,
    pub cdtr_acct: Account,
    #[serde(default)]
    pub rmt_inf: Option<Remittance>,
}

/// pacs.008 `FIToFICstmrCdtTrf`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pacs008 {
    pub grp_hdr: GroupHeader,
    pub cdt_trf_tx_inf: Vec<CreditTransfer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatusReason {
    pub rsn: Code,
}

/// ISO 20022's date-or-time choice: `<DtTm>` (SPI's) or `<Dt>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DateTime {
    #[serde(default)]
    pub dt_tm: Option<Text>,
    #[serde(default)]
    pub dt: Option<Text>,
}

/// pacs.002 `TxInfAndSts`: the status of one payment or return.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactionStatus {
    /// The EndToEndId of a payment, or the `RtrId` of a return.
    pub orgnl_end_to_end_id: Text,
    pub tx_sts: Text,
    #[serde(default)]
    pub sts_rsn_inf: Option<StatusReason>,
    /// When it was settled (`ACSC`).
    #[serde(default)]
    pub fctv_intr_bk_sttlm_dt: Option<DateTime>,
}

/// pacs.002 `FIToFIPmtStsRpt`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pacs002 {
    pub grp_hdr: GroupHeader,
    pub tx_inf_and_sts: Vec<TransactionStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReturnReason {
    pub rsn: Code,
    #[serde(default)]
    pub addtl_inf: Option<Text>,
}

/// pacs.004 `TxInf`: one return (devolução).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Return {
    pub rtr_id: Text,
    pub orgnl_end_to_end_id: Text,
    pub rtrd_intr_bk_sttlm_amt: Amount,
    pub rtr_rsn_inf: ReturnReason,
}

/// pacs.004 `PmtRtr`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pacs004 {
    pub grp_hdr: GroupHeader,
    pub tx_inf: Vec<Return>,
}

/// `<Document>` holding one of the three (the element name picks it).
#[derive(Debug, Deserialize)]
pub struct Document<T> {
    #[serde(rename = "FIToFICstmrCdtTrf", alias = "FIToFIPmtStsRpt", alias = "PmtRtr")]
    pub message: T,
}

/// SPI's `<Envelope>`: the business application header, then the document.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    #[serde(rename = "Document")]
    pub document: Document<T>,
}
