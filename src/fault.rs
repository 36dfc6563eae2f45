//! Whether retrying can cure a failure.
//!
//! A broker outage, a full disk, an object store that times out, a commit that lost a race: these
//! pass, and the engine retries them with backoff for as long as it runs, keeping what it has
//! buffered. Some failures never pass by themselves — storage that refuses pixlake's
//! credentials or permissions, a table another tool upgraded to a protocol pixlake cannot write,
//! a table whose schema someone else changed, a warehouse location that cannot hold a table.
//! Retrying those forever only hides them behind a process that looks alive: they are
//! [`Permanent`], and a retry loop gives up on them after `ingest.permanent_failure_attempts`
//! in a row (default [`PERMANENT_ATTEMPTS`], about 25 s with the backoff: a refusal can be a
//! blip — an object store answers 403 for an expired token while credentials rotate — or be
//! fixed meanwhile), stopping the pipeline with exit code 2 and the cause.
//!
//! Kafka's own configuration problems (refused credentials, untrusted certificates) are
//! diagnosed separately (`kafka::diagnosis`): a running ingest keeps retrying those, since the
//! fix happens on the broker and needs no restart, and reports them in `/readyz` and
//! `pixlake_kafka_problem`.

use std::error::Error;

/// How many attempts in a row a failure classified as permanent gets by default before retrying
/// stops (with the backoff of `ingest::retry`, 100 ms doubling, jittered: about 25 to 50 s from
/// the first).
pub const PERMANENT_ATTEMPTS: u32 = 8;

/// A failure that needs the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permanent {
    /// The storage refuses pixlake: credentials, permissions, an immutable or read-only place.
    AccessDenied,
    /// The table needs a Delta protocol version or feature pixlake cannot write.
    UnsupportedTable,
    /// Another writer changed the table's schema or metadata, or it has another schema.
    TableChanged,
    /// The warehouse location cannot hold a table (a file where a directory must be, an
    /// unknown URL scheme).
    BadLocation,
}

impl Permanent {
    /// Every kind, for metrics that list them all.
    pub const ALL: [Permanent; 4] =
        [Permanent::AccessDenied, Permanent::UnsupportedTable, Permanent::TableChanged, Permanent::BadLocation];

    /// The metric label (`pixlake_permanent_failures_total{cause}`).
    pub fn kind(self) -> &'static str {
        match self {
            Permanent::AccessDenied => "access_denied",
            Permanent::UnsupportedTable => "unsupported_table",
            Permanent::TableChanged => "table_changed",
            Permanent::BadLocation => "bad_location",
        }
    }

    /// What to do about it.
    pub fn hint(self) -> &'static str {
        match self {
            Permanent::AccessDenied => {
                "the storage refuses pixlake: give its user (or its credentials) read and write access to \
                 warehouse.root, or point warehouse.root somewhere it may write"
            }
            Permanent::UnsupportedTable => {
                "the table's Delta protocol changed or needs a feature pixlake cannot write (another tool upgraded \
                 it): restart pixlake, which says at start whether it can write the new protocol; if not, point \
                 pipelines[].table at a new table"
            }
            Permanent::TableChanged => {
                "another writer changed the table's schema or metadata: restart pixlake, which reads the table \
                 again and goes on if its schema is still pixlake's (a changed property); if it then refuses the \
                 table, restore it or point pipelines[].table at a new one"
            }
            Permanent::BadLocation => {
                "warehouse.root cannot hold tables there (a file where a directory must be, or an unsupported \
                 URL scheme): point warehouse.root at a directory or bucket prefix"
            }
        }
    }
}

/// Errors a retry loop can ask whether retrying can cure them.
pub trait Classify {
    /// `Some` when retrying will not cure it.
    fn permanent(&self) -> Option<Permanent>;
}

impl<T: Classify + ?Sized> Classify for Box<T> {
    fn permanent(&self) -> Option<Permanent> {
        (**self).permanent()
    }
}

/// Walks `error`'s causes and recognizes the permanent ones that the storage layer hides under
/// generic errors (an `io::Error` several wrappers down, an object store's refusal).
pub fn in_causes(error: &(dyn Error + 'static)) -> Option<Permanent> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    return Some(Permanent::AccessDenied);
                }
                std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory => {
                    return Some(Permanent::BadLocation);
                }
                _ => {}
            }
        }
        if let Some(store) = e.downcast_ref::<deltalake::ObjectStoreError>() {
            match store {
                deltalake::ObjectStoreError::PermissionDenied { .. }
                | deltalake::ObjectStoreError::Unauthenticated { .. } => return Some(Permanent::AccessDenied),
                deltalake::ObjectStoreError::NotImplemented { .. } => return Some(Permanent::BadLocation),
                _ => {}
            }
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] Box<dyn Error + Send + Sync>);

    #[test]
    fn finds_a_refusal_several_wrappers_down() {
        let denied = Wrapper(Box::new(Wrapper(Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)))));
        assert_eq!(in_causes(&denied), Some(Permanent::AccessDenied));
        let not_dir = Wrapper(Box::new(std::io::Error::from(std::io::ErrorKind::NotADirectory)));
        assert_eq!(in_causes(&not_dir), Some(Permanent::BadLocation));
        // A full disk passes once space is freed: retried.
        let full = Wrapper(Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)));
        assert_eq!(in_causes(&full), None);
        let refused = Wrapper(Box::new(deltalake::ObjectStoreError::Unauthenticated {
            path: "s3://b/t".into(),
            source: "InvalidAccessKeyId".into(),
        }));
        assert_eq!(in_causes(&refused), Some(Permanent::AccessDenied));
        for p in Permanent::ALL {
            assert!(!p.hint().is_empty() && !p.kind().contains(' '));
        }
    }
}
