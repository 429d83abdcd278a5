//! firstline: the first line of support. It reads what customers send, finds the facts that
//! decide a severity, proposes the level the written policy gives, asks only the questions
//! whose answers could change it, and labels the queue.
//!
//! # Layout
//! - [`triage`]: the pure engine: policy file → compiled matchers; message → facts →
//!   decision. No I/O.
//! - [`channels`]: protocols in and out; for now the email parser (raw RFC 5322 → text).
//! - [`input`]: turning what arrives (plain text, a raw `.eml`) into the text the engine reads.
//! - [`eval`]: labelled cases and the accuracy report of `firstline eval`.
//! - `src/main.rs`: the command line (`classify`, `eval`, `check-config`).

pub mod app;
pub mod channels;
pub mod eval;
pub mod input;
pub mod intake;
pub mod metrics;
pub mod settings;
pub mod store;
pub mod triage;
