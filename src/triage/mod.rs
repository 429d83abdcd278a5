//! The triage engine: pure text in, decision out. No I/O, no async, no channel types.
//!
//! Two steps, kept apart because channels merge the facts of a whole thread before
//! classifying: [`extract()`](fn@extract) turns one message into [`Facts`] (tri-state, with evidence),
//! [`classify()`](fn@classify) turns facts into a [`Decision`] (severity, rule, rationale, questions, labels).
//! Everything they know comes from a [`Policy`] compiled once from `config/policy.toml`.

pub mod check;
pub mod classify;
pub mod expr;
pub mod extract;
pub mod facts;
pub mod lang;
pub mod policy;
pub mod text;

pub use classify::{Decision, Question, classify};
pub use extract::extract;
pub use facts::{Evidence, Fact, FactValue, Facts, Source};
pub use policy::{Policy, PolicyError, PolicyErrors};

/// Extracts and classifies one message.
pub fn triage(policy: &Policy, message: &str) -> (Facts, Decision) {
    let facts = extract(policy, message);
    let decision = classify(policy, &facts);
    (facts, decision)
}
