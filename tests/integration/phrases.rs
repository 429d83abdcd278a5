//! The phrase bank (`fixtures/triage/phrases.jsonl`): short sentences, each stating one or two
//! facts, checked against what the extractor finds. It measures the vocabulary's coverage
//! of the ways people say things, apart from whole-message severity.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::POLICY;
use firstline::triage::classify;

/// The share of phrases whose every listed fact must be found with the right value. Below
/// it, the vocabulary has lost coverage; the failure lists every miss.
const MIN_PHRASE_ACCURACY: f64 = 0.90;

#[test]
fn phrase_bank_facts_are_found() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/triage/phrases.jsonl");
    let text = std::fs::read_to_string(path).expect("read the phrase bank");
    let mut total = 0;
    let mut wrong = 0;
    let mut misses = Vec::new();
    let mut per_attribute: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("phrase lines are JSON");
        let id = case["id"].as_str().unwrap_or("?");
        let phrase = case["text"].as_str().expect("a phrase has text");
        let expected = case["attributes"]
            .as_object()
            .expect("a phrase lists attributes");
        let facts = firstline::triage::extract(&POLICY, phrase);
        let decision = classify(&POLICY, &facts);
        total += 1;
        let before = misses.len();
        if expected.is_empty() {
            // A neutral line must not produce any fact that moves a level.
            let found: Vec<&String> = decision
                .attributes
                .keys()
                .filter(|k| k.as_str() != "products" && k.as_str() != "contact_phone")
                .collect();
            if !found.is_empty() {
                misses.push(format!("{id}: {phrase:?} is neutral but gave {found:?}"));
            }
        }
        for (name, want) in expected {
            let got = decision
                .attributes
                .get(name)
                .cloned()
                .unwrap_or(Value::Null);
            let entry = per_attribute.entry(name.clone()).or_default();
            entry.1 += 1;
            if &got == want {
                entry.0 += 1;
            } else {
                misses.push(format!(
                    "{id}: {phrase:?}: {name} expected {want}, got {got}"
                ));
            }
        }
        if misses.len() > before {
            wrong += 1;
        }
    }
    let right = total - wrong;
    let accuracy = right as f64 / total as f64;
    let table: Vec<String> = per_attribute
        .iter()
        .map(|(k, (r, n))| format!("  {k}: {r}/{n}"))
        .collect();
    println!(
        "phrase bank: {right}/{total} = {:.1}%\n{}",
        accuracy * 100.0,
        misses.join("\n")
    );
    assert!(
        accuracy >= MIN_PHRASE_ACCURACY,
        "phrase bank: {right}/{total} = {:.1}% (bar {:.0}%)\n{}\nmisses:\n{}",
        accuracy * 100.0,
        MIN_PHRASE_ACCURACY * 100.0,
        table.join("\n"),
        misses.join("\n")
    );
}
