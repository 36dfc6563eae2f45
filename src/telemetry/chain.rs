//! How an error is told to the operator: its message and every cause below it, once each, on one
//! line (`pixlake: cannot read the status: cannot reach Kafka at …; check …: Meta data fetch
//! error: …`) — the convention ripgrep uses.
//!
//! pixlake's own errors say only their own layer and end with what to do; what caused them lives
//! in `#[source]` and is printed here, never also inside the message. Libraries are not all so
//! careful (delta-rs and rdkafka put their source in their own text *and* return it from
//! `source()`), so a cause whose text the line already holds is skipped: every cause appears
//! exactly once whoever wrote it.

use std::error::Error;
use std::fmt;

/// Displays `error` and its causes, each once, separated by `": "`.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = String::new();
        let mut next: Option<&(dyn Error + 'static)> = Some(self.0);
        while let Some(e) = next {
            let text = one_line(&e.to_string());
            let text = text.trim();
            if !text.is_empty() && !said.contains(text) {
                if !said.is_empty() {
                    said.push_str(": ");
                }
                said.push_str(text);
            }
            next = e.source();
        }
        f.write_str(&said)
    }
}

/// `text` on one line: a library message spread over several (delta-rs quotes an `io::Error`'s
/// `Debug` on a line of its own) joins with "; ".
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// The causes of `error` below it, outermost first, as [`Chain`] would print them (for tests and
/// structured reports).
pub fn causes(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next = error.source();
    let mut said = error.to_string();
    while let Some(e) = next {
        let text = one_line(&e.to_string());
        if !text.trim().is_empty() && !said.contains(text.trim()) {
            said.push_str(&text);
            out.push(text.trim().to_owned());
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the status")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot reach Kafka at 127.0.0.1:1; check kafka.brokers")]
    struct Middle(#[source] Library);

    /// A library error that repeats its source in its own text, as rdkafka's and delta-rs's do.
    #[derive(Debug, thiserror::Error)]
    #[error("Meta data fetch error: {0}")]
    struct Library(#[source] std::io::Error);

    #[test]
    fn a_message_over_several_lines_is_joined() {
        let e = Outer(Middle(Library(std::io::Error::other(
            "Could not create local directory: /x\nError: Os { code: 20 }",
        ))));
        assert!(Chain(&e).to_string().ends_with("Could not create local directory: /x; Error: Os { code: 20 }"));
        assert!(!Chain(&e).to_string().contains('\n'));
    }

    #[test]
    fn every_cause_once_on_one_line() {
        let e = Outer(Middle(Library(std::io::Error::other("BrokerTransportFailure"))));
        assert_eq!(
            Chain(&e).to_string(),
            "cannot read the status: cannot reach Kafka at 127.0.0.1:1; check kafka.brokers: \
             Meta data fetch error: BrokerTransportFailure"
        );
        assert_eq!(
            causes(&e),
            vec![
                "cannot reach Kafka at 127.0.0.1:1; check kafka.brokers",
                "Meta data fetch error: BrokerTransportFailure"
            ]
        );
    }
}
