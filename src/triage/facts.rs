//! Facts found in a message (tri-state, with evidence), merging across a thread, and conditions over them.

use serde::Serialize;

use super::policy::{Cond, Policy};

/// Where in the message a piece of evidence stands; it decides how much it weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The sender's own new words (subject included).
    Own,
    /// A pasted log or command output: weaker than the sender's words.
    Log,
    /// A signature: only a phone number is taken from it.
    Signature,
    /// Quoted or forwarded earlier text: read only when the sender's own words hold no fact.
    Quoted,
}

/// The words that decided a fact, with byte offsets into the normalized text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub attribute: String,
    pub text: String,
    pub start: usize,
    pub end: usize,
    #[serde(skip)]
    pub source: Source,
    /// The statement was negated ("not down") or reported as over ("was down, fine now").
    #[serde(skip)]
    pub negated: bool,
}

/// The value of a known fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactValue {
    Flag(bool),
    Value(String),
    List(Vec<String>),
    Phone(String),
}

impl FactValue {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FactValue::Flag(b) => serde_json::Value::Bool(*b),
            FactValue::Value(s) | FactValue::Phone(s) => serde_json::Value::String(s.clone()),
            FactValue::List(v) => serde_json::Value::from(v.clone()),
        }
    }
}

/// A known fact with the evidence for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub value: FactValue,
    pub evidence: Vec<Evidence>,
    /// The weakest source among the evidence that decided it.
    pub source: Source,
}

/// Everything known about a message or a thread: one slot per policy attribute
/// (`None` = unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub slots: Vec<Option<Fact>>,
    /// The normalized text the evidence offsets point into. Empty for merged thread facts:
    /// their evidence keeps the offsets into the message each piece came from.
    pub text: String,
    /// Whether anything in the sender's own words (or the quoted fallback) was a fact.
    pub found_any: bool,
    /// The language of the sender's words (ISO 639-1; "en" when unsure or unknown).
    pub language: String,
}

impl Facts {
    pub fn empty(policy: &Policy) -> Facts {
        Facts {
            slots: vec![None; policy.attributes.len()],
            text: String::new(),
            found_any: false,
            language: super::lang::BASE.to_string(),
        }
    }

    pub fn get(&self, attribute: usize) -> Option<&Fact> {
        self.slots.get(attribute).and_then(Option::as_ref)
    }

    /// The weakest source among the known facts of `attributes` (own words when none is
    /// known): a conclusion drawn from them is only as sure as that.
    pub fn weakest_source(&self, attributes: &[usize]) -> Source {
        attributes
            .iter()
            .filter_map(|&i| self.get(i))
            .map(|f| f.source)
            .max()
            .unwrap_or(Source::Own)
    }

    /// The fact by attribute name (None when unknown or not in the policy).
    pub fn by_name<'a>(&'a self, policy: &Policy, name: &str) -> Option<&'a Fact> {
        policy.attribute(name).and_then(|i| self.get(i))
    }

    pub fn flag(&self, attribute: usize) -> Option<bool> {
        match self.get(attribute)?.value {
            FactValue::Flag(b) => Some(b),
            _ => None,
        }
    }

    /// Sets a fact by attribute name; used when a thread's answers or an agent fill one in.
    pub fn set(&mut self, policy: &Policy, name: &str, value: FactValue) -> bool {
        let Some(i) = policy.attribute(name) else {
            return false;
        };
        self.slots[i] = Some(Fact {
            value,
            evidence: Vec::new(),
            source: Source::Own,
        });
        self.found_any = true;
        true
    }

    /// Merges a later message of the same thread: what it knows overrides, what it does not
    /// know keeps the earlier value (an answer to "is this production?" updates only that).
    pub fn merge(&mut self, later: &Facts) {
        for (slot, new) in self.slots.iter_mut().zip(&later.slots) {
            match (slot.as_mut(), new) {
                (_, None) => {}
                (Some(old), Some(new)) => {
                    if let (FactValue::List(a), FactValue::List(b)) = (&mut old.value, &new.value) {
                        for item in b {
                            if !a.contains(item) {
                                a.push(item.clone());
                            }
                        }
                    } else {
                        old.value = new.value.clone();
                    }
                    old.evidence = new.evidence.clone();
                    old.source = new.source;
                }
                (None, Some(new)) => *slot = Some(new.clone()),
            }
        }
        self.found_any |= later.found_any;
        // The customer's latest message says which language to answer in.
        self.language = later.language.clone();
        // Evidence now comes from several messages, each with offsets into its own text.
        self.text.clear();
    }
}

/// What a condition may look at besides the facts: known only after step A.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome<'a> {
    pub level: Option<u8>,
    pub base_level: Option<u8>,
    pub rule: Option<&'a str>,
}

/// Evaluates a condition over the facts.
pub fn holds(policy: &Policy, cond: &Cond, facts: &Facts, outcome: Outcome) -> bool {
    match cond {
        Cond::Const(b) => *b,
        Cond::FlagIs(i, b) => facts.flag(*i) == Some(*b),
        Cond::Known(i) => facts.get(*i).is_some(),
        Cond::ValueIs(i, v) => {
            matches!(facts.get(*i), Some(Fact { value: FactValue::Value(x), .. }) if x == v)
        }
        Cond::ListHas(i, v) => {
            matches!(facts.get(*i), Some(Fact { value: FactValue::List(x), .. }) if x.contains(v))
        }
        Cond::Derived(d) => holds(policy, &policy.derived[*d].1, facts, outcome),
        Cond::Level(op, n) => outcome.level.is_some_and(|l| op.holds_num(l as i64, *n)),
        Cond::BaseLevel(op, n) => outcome
            .base_level
            .is_some_and(|l| op.holds_num(l as i64, *n)),
        Cond::Rule(id) => outcome.rule == Some(id.as_str()),
        Cond::Not(c) => !holds(policy, c, facts, outcome),
        Cond::And(v) => v.iter().all(|c| holds(policy, c, facts, outcome)),
        Cond::Or(v) => v.iter().any(|c| holds(policy, c, facts, outcome)),
    }
}
