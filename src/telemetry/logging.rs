//! Log output: `tracing` events as human-readable lines (development) or JSON lines (production,
//! for ELK-style collectors), on stderr, every line passed through the [`Masker`] first.

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use super::mask::Masker;
use crate::config::LogFormat;

/// pixlake at info; the libraries' per-commit chatter (snapshot building, binary columns
/// without statistics) only when it is a problem.
pub const DEFAULT_FILTER: &str = "info,rdkafka=warn,librdkafka=warn,buoyant_kernel=warn,\
deltalake_core::writer::stats=error,deltalake_core::kernel::transaction=error";

/// Installs the process's log subscriber: `format` decides the line format, `PIXLAKE_LOG` (or
/// `RUST_LOG`) the filter; `secrets` (the configuration's passwords and keys) are redacted from
/// every line. A second call does nothing (tests call it freely).
pub fn init(format: LogFormat, secrets: Vec<String>) {
    let filter =
        std::env::var("PIXLAKE_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| DEFAULT_FILTER.into());
    let writer = MaskingWriter::with_secrets(io::stderr, secrets);
    let builder = tracing_subscriber::fmt().with_env_filter(EnvFilter::new(filter)).with_writer(writer);
    let _ = match format {
        LogFormat::Human => builder.with_ansi(std::io::IsTerminal::is_terminal(&io::stderr())).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init(),
    };
}

/// A [`MakeWriter`] whose lines are masked before they reach `inner`.
///
/// The formatter renders each event completely and hands it over in one `write_all`, so a
/// write is one or more whole lines: masking never sees half a CPF.
#[derive(Clone)]
pub struct MaskingWriter<M> {
    inner: M,
    masker: Masker,
}

impl<M> MaskingWriter<M> {
    /// Masks what `inner`'s writers receive.
    pub fn new(inner: M) -> Self {
        Self::with_secrets(inner, Vec::new())
    }

    /// Masks what `inner`'s writers receive, `secrets` included.
    pub fn with_secrets(inner: M, secrets: Vec<String>) -> Self {
        MaskingWriter { inner, masker: Masker::with_secrets(secrets) }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MaskingWriter<M> {
    type Writer = Masked<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Masked { inner: self.inner.make_writer(), masker: &self.masker }
    }
}

/// One event's writer (see [`MaskingWriter`]).
pub struct Masked<'a, W> {
    inner: W,
    masker: &'a Masker,
}

impl<W: Write> Write for Masked<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.inner.write_all(self.masker.mask(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_are_masked_and_parse() {
        let capture = Capture::default();
        let sink = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(MaskingWriter::new(move || sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(pipeline = "payments", key = "ana@exemplo.com.br", "payer 123.456.789-09 rejected");
        });
        let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["message"], "payer [CPF] rejected");
        assert_eq!(line["key"], "[EMAIL]");
        assert_eq!(line["pipeline"], "payments");
        assert_eq!(line["level"], "WARN");
    }
}
