//! firstline: the first line of support. It reads what customers send, finds the facts that
//! decide a severity, proposes the level the written policy gives, asks only the questions
//! whose answers could change it, and labels the queue.
//!
//! # Layout
//! - [`triage`]: the pure engine: policy file (and its language packs) → compiled matchers;
//!   message → facts → decision. No I/O.
//! - [`channels`]: protocols in and out: `email` (Maildir, IMAP, SMTP/files, loops, labels),
//!   `http` (API, queue page, webhooks), `discord` (threads, agents' room, slash commands).
//! - [`intake`]: a message from any channel → its ticket, merged facts, decision and outbox
//!   work, in one transaction.
//! - [`store`]: SQLite: tickets, messages, decisions, overrides, outbox, cursors, quarantine.
//! - [`app`]: `serve`: builds everything from [`settings`] and wires the channels.
//! - [`metrics`]: the processing latency histogram.
//! - [`input`]: plain text or a raw `.eml` → the text the engine reads.
//! - [`eval`]: labelled cases and the accuracy report of `firstline eval`.
//! - `src/main.rs`: the command line.

pub mod app;
pub mod channels;
pub mod eval;
pub mod input;
pub mod intake;
pub mod metrics;
pub mod settings;
pub mod store;
pub mod triage;
