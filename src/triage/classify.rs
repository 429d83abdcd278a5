//! Classification: step A (the most severe matching criterion), step B (the seed's notes),
//! the clarifying questions and the labels, as the policy file says.

use serde::Serialize;
use serde_json::{Map, Value};

use super::facts::{Evidence, FactValue, Facts, Outcome, Source, holds};
use super::policy::{AttributeKind, Policy, Rule};

/// A clarifying question for the customer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Question {
    pub id: String,
    pub text: String,
}

/// A step-B note that changed the level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedNote {
    pub id: String,
    pub from: u8,
    pub to: u8,
}

/// The proposed severity and everything that explains it; serializes to the `classify` JSON
/// contract (section 4 of the policy document).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub severity: u8,
    pub severity_name: String,
    pub rule: String,
    pub rationale: String,
    pub attributes: Map<String, Value>,
    pub evidence: Vec<Evidence>,
    pub questions: Vec<Question>,
    pub labels: Vec<String>,
    pub confidence: f64,
    /// Step A's level and the notes that moved it (shown to people, not in the JSON contract).
    #[serde(skip)]
    pub base_level: u8,
    /// The language the rationale and questions are written in (the customer's, when the
    /// policy has a pack for it; else English).
    #[serde(skip)]
    pub language: String,
    #[serde(skip)]
    pub notes: Vec<AppliedNote>,
}

impl Decision {
    pub fn to_json(&self, id: Option<Value>) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let (Some(id), Value::Object(map)) = (id, &mut v) {
            let mut with_id = Map::new();
            with_id.insert("id".into(), id);
            with_id.extend(std::mem::take(map));
            return Value::Object(with_id);
        }
        v
    }
}

/// Step A: the rules that give the base level. A matching rule that `decides` wins outright
/// (the first in file order); otherwise every matching rule of the most severe level, in file
/// order; otherwise the default.
fn base_rules<'p>(policy: &'p Policy, facts: &Facts) -> Vec<&'p Rule> {
    let none = Outcome::default();
    if let Some(r) = policy
        .rules
        .iter()
        .find(|r| r.decides && holds(policy, &r.when, facts, none))
    {
        return vec![r];
    }
    let matching: Vec<&Rule> = policy
        .rules
        .iter()
        .filter(|r| !r.decides && holds(policy, &r.when, facts, none))
        .collect();
    match matching.iter().map(|r| r.level).min() {
        Some(top) => matching.into_iter().filter(|r| r.level == top).collect(),
        None => vec![&policy.default_rule],
    }
}

/// Step B for one base rule: the level after the notes, the notes that moved it and the
/// rationale (the rule's, then each applied note's).
struct StepB {
    level: u8,
    notes: Vec<AppliedNote>,
    rationale: String,
}

fn step_b(policy: &Policy, facts: &Facts, rule: &Rule) -> StepB {
    let base_level = rule.level;
    let mut level = base_level;
    let mut notes = Vec::new();
    let mut rationale = translated(facts, &rule.rationale, &rule.translations);
    for note in &policy.notes {
        if !note.from.contains(&level) || (!note.rules.is_empty() && !note.rules.contains(&rule.id))
        {
            continue;
        }
        let outcome = Outcome {
            level: Some(level),
            base_level: Some(base_level),
            rule: Some(&rule.id),
        };
        if holds(policy, &note.when, facts, outcome) {
            notes.push(AppliedNote {
                id: note.id.clone(),
                from: level,
                to: note.to,
            });
            rationale.push(' ');
            rationale.push_str(&translated(facts, &note.rationale, &note.translations));
            level = note.to;
        }
    }
    StepB {
        level,
        notes,
        rationale,
    }
}

/// A policy text in the customer's language when the policy has it, else the base text.
fn translated(
    facts: &Facts,
    base: &str,
    translations: &std::collections::HashMap<String, String>,
) -> String {
    translations
        .get(facts.language.as_str())
        .map_or(base, String::as_str)
        .trim()
        .to_string()
}

/// Applies the policy to the facts. Every rule of the base level goes through step B and the
/// most severe outcome stands (the first in file order on a tie): a note that lowers only some
/// criteria ("some users" lowers a broken function) does not lower a case that another
/// criterion of the same level holds up on its own.
pub fn classify(policy: &Policy, facts: &Facts) -> Decision {
    let (
        rule,
        StepB {
            level,
            notes,
            rationale,
        },
    ) = base_rules(policy, facts)
        .into_iter()
        .map(|rule| (rule, step_b(policy, facts, rule)))
        .min_by_key(|(_, b)| b.level)
        .expect("base_rules gives at least one rule");
    let base_level = rule.level;

    let outcome = Outcome {
        level: Some(level),
        base_level: Some(base_level),
        rule: Some(&rule.id),
    };
    let questions: Vec<Question> = policy
        .questions
        .iter()
        .filter(|q| holds(policy, &q.when, facts, outcome))
        .map(|q| Question {
            id: q.id.clone(),
            text: translated(facts, &q.text, &q.translations),
        })
        .collect();

    let mut attributes = Map::new();
    let mut evidence = Vec::new();
    let mut labels = vec![
        policy
            .labels
            .severity
            .replace("{level}", &level.to_string()),
    ];
    for (a, slot) in policy.attributes.iter().zip(&facts.slots) {
        let Some(fact) = slot else { continue };
        if a.internal {
            continue;
        }
        attributes.insert(a.name.clone(), fact.value.to_json());
        evidence.extend(fact.evidence.iter().cloned());
        if fact.value == FactValue::Flag(true) && a.kind == AttributeKind::Flag {
            labels.push(policy.labels.attribute.replace("{name}", &a.name));
        }
    }
    for &i in &policy.labels.value {
        if let Some(FactValue::Value(v)) = facts.get(i).map(|f| &f.value) {
            labels.push(
                policy
                    .labels
                    .value_format
                    .replace("{name}", &policy.attributes[i].name)
                    .replace("{value}", v),
            );
        }
    }
    for q in &questions {
        labels.push(policy.labels.question.replace("{id}", &q.id));
    }
    evidence.sort_by_key(|e| (e.start, e.end));

    Decision {
        severity: level,
        severity_name: policy.level_name(level).to_string(),
        rule: rule.id.clone(),
        rationale,
        attributes,
        evidence,
        questions,
        labels,
        confidence: confidence(policy, rule, facts, notes.len()),
        base_level,
        language: facts.language.clone(),
        notes,
    }
}

/// How sure the proposal is: the rule's own confidence, lowered when its deciding facts come
/// only from a pasted log or quoted text, and a little for each note that moved the level.
fn confidence(policy: &Policy, rule: &Rule, facts: &Facts, notes: usize) -> f64 {
    let c = &policy.confidence;
    let deciding = super::check::attributes_of(policy, &rule.when);
    let factor = match facts.weakest_source(&deciding) {
        Source::Own | Source::Signature => c.own_words,
        Source::Log => c.log_only,
        Source::Quoted => c.quoted_only,
    };
    let value = rule.confidence * factor * c.per_note.powi(notes as i32);
    (value.clamp(0.0, 1.0) * 100.0).round() / 100.0
}
