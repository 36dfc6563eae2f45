//! Progress of the long one-shot commands on stderr, drawn only when stderr is a terminal: an
//! operator watching `maintain` or `dlq replay` sees counts and rates; a pipe, a file, a log
//! collector or `--json` output gets nothing extra.

use std::io::IsTerminal;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::telemetry::progress::Progress;

/// A bar (or, when the total is unknown, a counter) per step, on stderr.
pub struct Bar {
    shown: bool,
    current: Mutex<Option<ProgressBar>>,
}

impl Bar {
    /// Draws on stderr when it is a terminal, not at all otherwise.
    pub fn stderr() -> Self {
        Bar { shown: std::io::stderr().is_terminal(), current: Mutex::new(None) }
    }

    fn end_step(current: &mut Option<ProgressBar>) {
        if let Some(bar) = current.take() {
            bar.finish();
        }
    }

    /// Ends the last step (its line stays, with its final count).
    pub fn finish(&self) {
        Self::end_step(&mut self.current.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl Progress for Bar {
    fn step(&self, what: &str, total: Option<u64>, unit: &'static str) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        Self::end_step(&mut current);
        if !self.shown {
            return;
        }
        let (bar, template) = match (total, unit) {
            (Some(n), _) => (
                ProgressBar::new(n),
                format!("{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{rate}}, {{eta}} left)"),
            ),
            (None, "") => (ProgressBar::no_length(), "{spinner} {msg} ({elapsed})".to_owned()),
            (None, _) => (ProgressBar::no_length(), format!("{{spinner}} {{msg}}: {{human_pos}} {unit} ({{rate}})")),
        };
        let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()).with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", indicatif::HumanCount(state.per_sec() as u64));
            },
        );
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(style.progress_chars("=> "));
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        *current = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = self.current.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            bar.inc(n);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}
