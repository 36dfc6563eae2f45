//! Why a Kafka client cannot use the broker, told apart from "the broker is down".
//!
//! librdkafka reports a refused password, an untrusted certificate or an undecodable batch the
//! way it reports a dead broker: connections fail, requests time out, the client retries
//! forever. Its error events carry the cause in words only. Every client pixlake creates keeps
//! the last such cause ([`Diagnosis`], filled by its context's error callback), so a command
//! that fails says *which setting* to fix instead of "is the broker reachable?", and a command
//! that would wait out a timeout can stop as soon as the cause is known.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// A cause that retrying will not cure: the configuration (or the broker's) must change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The broker refused the SASL credentials.
    Authentication,
    /// The broker's certificate is not signed by a CA this client trusts.
    UntrustedBroker,
    /// The broker refused this client's certificate: none given, expired, or from a CA it does
    /// not trust.
    ClientCertificate,
    /// Another TLS failure (often `security.protocol` not matching the listener).
    Tls,
    /// The broker's ACLs refuse the principal (topic, group or cluster).
    Authorization,
    /// A record batch could not be decompressed.
    Decompression,
}

impl Problem {
    /// Recognizes a cause in an error event (`code`, librdkafka's text).
    pub fn classify(code: Option<RDKafkaErrorCode>, text: &str) -> Option<Problem> {
        let t = text.to_ascii_lowercase();
        let has = |needle: &str| t.contains(needle);
        if matches!(
            code,
            Some(
                RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
            )
        ) || has("authorization failed")
        {
            return Some(Problem::Authorization);
        }
        // librdkafka's own guess for a plaintext client on a TLS listener (and the reverse).
        if has("incorrect security.protocol") {
            return Some(Problem::Tls);
        }
        // A connection the broker dropped (a restart, a rolling upgrade) is an outage, even in
        // the middle of a TLS handshake.
        if has("disconnected") || has("connection refused") || has("connection reset") {
            return None;
        }
        if code == Some(RDKafkaErrorCode::Authentication)
            || code == Some(RDKafkaErrorCode::SaslAuthenticationFailed)
            || has("sasl authentication error")
            || has("authentication failed")
        {
            return Some(Problem::Authentication);
        }
        if has("certificate verify failed") || has("broker certificate could not be verified") {
            return Some(Problem::UntrustedBroker);
        }
        if [
            "alert bad certificate",
            "alert certificate unknown",
            "alert certificate required",
            "alert certificate expired",
            "alert certificate revoked",
            "alert unknown ca",
        ]
        .iter()
        .any(|n| has(n))
        {
            return Some(Problem::ClientCertificate);
        }
        // rust-rdkafka hands a poll error over as `Message consumption error: NotImplemented`
        // without librdkafka's "Decompression (codec 0x4) … failed" text (that comes as a log
        // line): in consumption, NotImplemented is a codec.
        let consuming_unimplemented = code == Some(RDKafkaErrorCode::NotImplemented) && has("consumption");
        if code == Some(RDKafkaErrorCode::BadCompression)
            || consuming_unimplemented
            || has("decompress")
            || has("compression codec")
        {
            return Some(Problem::Decompression);
        }
        if code == Some(RDKafkaErrorCode::SSL) || has("ssl handshake failed") || has("ssl routines") {
            return Some(Problem::Tls);
        }
        None
    }

    /// The metric label.
    pub fn kind(self) -> &'static str {
        match self {
            Problem::Authentication => "authentication",
            Problem::UntrustedBroker => "untrusted_broker_certificate",
            Problem::ClientCertificate => "client_certificate",
            Problem::Tls => "tls",
            Problem::Authorization => "authorization",
            Problem::Decompression => "decompression",
        }
    }

    /// Every kind, for metrics that list them all.
    pub const ALL: [Problem; 6] = [
        Problem::Authentication,
        Problem::UntrustedBroker,
        Problem::ClientCertificate,
        Problem::Tls,
        Problem::Authorization,
        Problem::Decompression,
    ];

    /// What to do about it, naming the settings.
    pub fn hint(self) -> &'static str {
        match self {
            Problem::Authentication => {
                "the broker refused the SASL credentials: check sasl.username, sasl.password (or sasl.password_file) \
                 and sasl.mechanism in kafka.properties"
            }
            Problem::UntrustedBroker => {
                "the broker's TLS certificate is not signed by a CA this client trusts: set kafka.properties \
                 ssl.ca.location to the CA that signed it"
            }
            Problem::ClientCertificate => {
                "the broker refused this client's TLS certificate (none given, expired, or not signed by a CA the \
                 broker trusts): check ssl.certificate.location and ssl.key.location in kafka.properties, and the \
                 certificate's validity dates"
            }
            Problem::Tls => {
                "the TLS connection to the broker failed: check that security.protocol (SSL or SASL_SSL) matches the \
                 broker's listener and the ssl.* settings in kafka.properties"
            }
            Problem::Authorization => {
                "the broker's ACLs refuse this principal: it needs Read and Describe on the source topics and \
                 Read on the pipelines' consumer groups, Write on the DLQ topic, Describe on the cluster (ask the \
                 Kafka administrators; the principal is sasl.username or the client certificate's subject)"
            }
            Problem::Decompression => {
                "a record batch on the topic cannot be decompressed: it was written with a codec this build cannot \
                 read, or it is corrupt; the consumer cannot get past it"
            }
        }
    }
}

/// A diagnosed cause with librdkafka's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosed {
    pub problem: Problem,
    /// librdkafka's description (broker, state, OpenSSL error).
    pub detail: String,
}

impl std::fmt::Display for Diagnosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.problem.hint(), self.detail)
    }
}

impl std::error::Error for Diagnosed {}

/// The last diagnosed cause of one client, shared between librdkafka's callback thread and
/// the code that uses the client.
#[derive(Debug, Default)]
pub struct Diagnosis {
    any: AtomicBool,
    last: Mutex<Option<Diagnosed>>,
}

impl Diagnosis {
    /// Looks at one error event; keeps it when it names a [`Problem`].
    ///
    /// The generic "TLS failed" of an error event does not replace the precise cause its log
    /// line gave just before (an untrusted broker, a refused client certificate).
    pub fn note(&self, code: Option<RDKafkaErrorCode>, text: &str) -> Option<Problem> {
        let problem = Problem::classify(code, text)?;
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let precise =
            last.as_ref().is_some_and(|d| matches!(d.problem, Problem::UntrustedBroker | Problem::ClientCertificate));
        if !(problem == Problem::Tls && precise && self.any.load(Ordering::Relaxed)) {
            *last = Some(Diagnosed { problem, detail: text.trim().to_owned() });
        }
        self.any.store(true, Ordering::Relaxed);
        Some(problem)
    }

    /// The last cause, if one was seen since the last [`Diagnosis::clear`].
    pub fn get(&self) -> Option<Diagnosed> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        self.last.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The client worked again (a record, an acknowledgement, metadata): forget the cause.
    /// Cheap when there is nothing to forget (one relaxed load): called per record.
    pub fn clear(&self) {
        if self.any.load(Ordering::Relaxed) && self.any.swap(false, Ordering::Relaxed) {
            *self.last.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

/// The error code inside a librdkafka error, if it has one.
pub fn code_of(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    error.rdkafka_error_code()
}

/// Forwards a librdkafka log line to `tracing`, after letting `diagnosis` look at errors and
/// warnings: a client that is never polled (a metadata request) gets no error events, but its
/// broker threads log why connections fail (`FAIL`), with the OpenSSL or SASL detail.
pub fn log_and_note(diagnosis: &Diagnosis, level: RDKafkaLogLevel, fac: &str, message: &str) {
    if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
        diagnosis.note(None, message);
    }
    log(level, fac, message);
}

/// What librdkafka says at warning level about normal operation, retried by itself: a broker
/// that has just started and is still loading its coordinators, a leader being elected for a
/// new topic. Told at info: an operator must not learn to skip WARN lines.
const ROUTINE: [&str; 3] = ["Coordinator load in progress", "Leader not available", "Not coordinator"];

/// The level a librdkafka log line deserves in pixlake's log.
pub fn level(level: RDKafkaLogLevel, message: &str) -> tracing::Level {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::Level::ERROR
        }
        RDKafkaLogLevel::Warning if ROUTINE.iter().any(|r| message.contains(r)) => tracing::Level::INFO,
        RDKafkaLogLevel::Warning => tracing::Level::WARN,
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::Level::INFO,
        RDKafkaLogLevel::Debug => tracing::Level::DEBUG,
    }
}

/// Forwards a librdkafka log line to `tracing`.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match self::level(level, message) {
        tracing::Level::ERROR => tracing::error!(target: "librdkafka", fac, "{message}"),
        tracing::Level::WARN => tracing::warn!(target: "librdkafka", fac, "{message}"),
        tracing::Level::INFO => tracing::info!(target: "librdkafka", fac, "{message}"),
        _ => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

/// The context of pixlake's reading clients: logs like every client, and keeps the diagnosis.
#[derive(Debug, Default)]
pub struct DiagnosingContext {
    pub diagnosis: Diagnosis,
}

impl ClientContext for DiagnosingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_and_note(&self.diagnosis, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.diagnosis.note(code_of(&error), reason).is_none() {
            tracing::debug!(target: "librdkafka", %error, "{reason}");
        }
    }
}

impl ConsumerContext for DiagnosingContext {}

#[cfg(test)]
mod tests {
    use super::*;

    /// What librdkafka 2.12 said against the real broker (`scripts/kafka.sh` listeners).
    #[test]
    fn recognizes_what_librdkafka_reports() {
        let cases = [
            (
                Some(RDKafkaErrorCode::Authentication),
                "sasl_ssl://127.0.0.1:9094/bootstrap: SASL authentication error: Authentication failed during \
                 authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 310ms in state AUTH_REQ)",
                Some(Problem::Authentication),
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "ssl://127.0.0.1:9095/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify \
                 failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured",
                Some(Problem::UntrustedBroker),
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "ssl://127.0.0.1:9095/bootstrap: Receive failed: error:0A000412:SSL routines::sslv3 alert bad \
                 certificate: SSL alert number 42 (after 0ms in state APIVERSION_QUERY)",
                Some(Problem::ClientCertificate),
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "ssl://127.0.0.1:9095/bootstrap: Receive failed: error:0A000416:SSL routines::sslv3 alert certificate \
                 unknown: SSL alert number 46 (after 0ms in state APIVERSION_QUERY)",
                Some(Problem::ClientCertificate),
            ),
            (
                Some(RDKafkaErrorCode::NotImplemented),
                "Decompression (codec 0x4) of message at 12 of 4096 bytes failed: Local: Not implemented",
                Some(Problem::Decompression),
            ),
            (
                Some(RDKafkaErrorCode::AllBrokersDown),
                "127.0.0.1:9095/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN",
                None,
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "Connect to ipv4#127.0.0.1:9092 failed: Connection refused",
                None,
            ),
        ];
        for (code, text, want) in cases {
            assert_eq!(Problem::classify(code, text), want, "{text}");
        }
    }

    #[test]
    fn routine_retries_are_not_warnings() {
        let getpid = "[thrd:main]: Failed to acquire idempotence PID from broker 127.0.0.1:9092/1: Broker: \
                      Coordinator load in progress: retrying";
        assert_eq!(level(RDKafkaLogLevel::Warning, getpid), tracing::Level::INFO);
        let refused = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused";
        assert_eq!(level(RDKafkaLogLevel::Error, refused), tracing::Level::ERROR);
        assert_eq!(level(RDKafkaLogLevel::Warning, refused), tracing::Level::WARN);
    }

    #[test]
    fn the_last_cause_is_kept_until_the_client_works_again() {
        let d = Diagnosis::default();
        assert_eq!(d.note(None, "Connect to ipv4#127.0.0.1:9092 failed: Connection refused"), None);
        assert_eq!(d.get(), None, "an outage is not a configuration problem");
        d.note(Some(RDKafkaErrorCode::Authentication), "SASL authentication error: invalid credentials");
        let got = d.get().unwrap();
        assert_eq!(got.problem, Problem::Authentication);
        assert!(got.to_string().contains("sasl.password"), "{got}");
        d.clear();
        assert_eq!(d.get(), None);
        // The precise TLS cause of a log line survives the generic error event after it.
        d.note(None, "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed");
        d.note(Some(RDKafkaErrorCode::SSL), "Message consumption error: SSL (Local: SSL error)");
        assert_eq!(d.get().unwrap().problem, Problem::UntrustedBroker);
        for p in Problem::ALL {
            assert!(!p.hint().is_empty() && !p.kind().contains(' '));
        }
    }
}
