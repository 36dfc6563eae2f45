//! How far a long operator command has got. The command line draws it on a terminal
//! (`cli::progress`); a pipe, a log collector or a test passes [`Silent`] and sees nothing.

/// Told as the work goes: a step at a time, a count within it.
pub trait Progress: Send + Sync {
    /// A new step (the previous one is done): `what` it does, over `total` `unit`s when known
    /// (no unit: nothing to count, only time passing).
    fn step(&self, what: &str, total: Option<u64>, unit: &'static str);
    /// `n` more units of the current step are done.
    fn advance(&self, n: u64);
}

/// Nothing is shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _: &str, _: Option<u64>, _: &'static str) {}
    fn advance(&self, _: u64) {}
}
