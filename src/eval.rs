//! Labelled cases (`fixtures/triage/*.jsonl`) and the accuracy report of `firstline eval`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::input;
use crate::triage::{self, Policy};

/// What a labelled case expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub severity: u8,
    #[serde(default)]
    pub questions: Option<Vec<String>>,
    #[serde(default)]
    pub attributes: Option<Map<String, Value>>,
}

/// One labelled message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub eml: Option<String>,
    pub expected: Expected,
    /// The language of the message (default `en`).
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Why a fixture file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Case {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Reads a `.jsonl` file of labelled cases; every bad line is an error naming the line.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| LoadError::Case {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let case: Case = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        if case.text.is_some() == case.eml.is_some() {
            return Err(err(format!(
                "case {} needs exactly one of \"text\" and \"eml\"",
                case.id
            )));
        }
        cases.push(case);
    }
    Ok(cases)
}

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: String,
    pub split: String,
    pub lang: String,
    pub expected: u8,
    pub got: u8,
    pub rule: String,
    pub rationale: String,
    pub expected_questions: Option<Vec<String>>,
    pub got_questions: Vec<String>,
    /// Expected attributes that the decision got wrong: (name, expected, got).
    pub attribute_misses: Vec<(String, Value, Value)>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn correct(&self) -> bool {
        self.error.is_none() && self.expected == self.got
    }
}

/// Runs the engine on each case.
pub fn run(policy: &Policy, split: &str, cases: &[Case]) -> Vec<Outcome> {
    cases
        .iter()
        .map(|case| {
            let text = match (&case.text, &case.eml) {
                (Some(t), _) => Ok(t.clone()),
                (None, Some(eml)) => input::email_text(eml.as_bytes()).map_err(|e| e.to_string()),
                (None, None) => Err("no text".to_string()),
            };
            let mut out = Outcome {
                id: case.id.clone(),
                split: split.to_string(),
                lang: case.lang.clone().unwrap_or_else(|| "en".to_string()),
                expected: case.expected.severity,
                got: 0,
                rule: String::new(),
                rationale: String::new(),
                expected_questions: case.expected.questions.clone(),
                got_questions: Vec::new(),
                attribute_misses: Vec::new(),
                error: None,
            };
            match text {
                Err(e) => {
                    // A case that cannot be read gets none of its labelled facts right.
                    if let Some(attrs) = &case.expected.attributes {
                        for (name, want) in attrs {
                            out.attribute_misses
                                .push((name.clone(), want.clone(), Value::Null));
                        }
                    }
                    out.error = Some(e);
                }
                Ok(text) => {
                    let (_, d) = triage::triage(policy, &text);
                    out.got = d.severity;
                    out.rule = d.rule.clone();
                    out.rationale = d.rationale.clone();
                    out.got_questions = d.questions.iter().map(|q| q.id.clone()).collect();
                    if let Some(attrs) = &case.expected.attributes {
                        for (name, want) in attrs {
                            let got = d.attributes.get(name).cloned().unwrap_or(Value::Null);
                            if &got != want {
                                out.attribute_misses.push((name.clone(), want.clone(), got));
                            }
                        }
                    }
                }
            }
            out
        })
        .collect()
}

/// Counts behind the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub cases: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// level → (precision, recall, support)
    pub per_level: BTreeMap<u8, (f64, f64, usize)>,
    /// `confusion[expected][got]`
    pub confusion: BTreeMap<u8, BTreeMap<u8, usize>>,
    pub question_precision: f64,
    pub question_recall: f64,
    pub question_cases: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

pub fn summarize(levels: &[u8], outcomes: &[&Outcome]) -> Summary {
    let mut s = Summary {
        cases: outcomes.len(),
        correct: outcomes.iter().filter(|o| o.correct()).count(),
        ..Summary::default()
    };
    s.accuracy = ratio(s.correct, s.cases);
    for &l in levels {
        let predicted = outcomes.iter().filter(|o| o.got == l).count();
        let actual = outcomes.iter().filter(|o| o.expected == l).count();
        let hit = outcomes
            .iter()
            .filter(|o| o.got == l && o.expected == l)
            .count();
        s.per_level
            .insert(l, (ratio(hit, predicted), ratio(hit, actual), actual));
        let row = s.confusion.entry(l).or_default();
        for &g in levels {
            row.insert(
                g,
                outcomes
                    .iter()
                    .filter(|o| o.expected == l && o.got == g)
                    .count(),
            );
        }
    }
    let (mut tp, mut asked, mut wanted) = (0, 0, 0);
    for o in outcomes {
        if let Some(exp) = &o.expected_questions {
            s.question_cases += 1;
            asked += o.got_questions.len();
            wanted += exp.len();
            tp += o.got_questions.iter().filter(|q| exp.contains(q)).count();
        }
    }
    s.question_precision = ratio(tp, asked);
    s.question_recall = ratio(tp, wanted);
    s
}

/// Renders the report: per split, per language, overall; then the misclassified cases.
pub fn render(levels: &[u8], outcomes: &[Outcome], attribute_checks: usize) -> String {
    let mut out = String::new();
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let mut groups: Vec<(String, Vec<&Outcome>)> = Vec::new();
    let mut splits: Vec<&str> = Vec::new();
    for o in outcomes {
        if !splits.contains(&o.split.as_str()) {
            splits.push(&o.split);
        }
    }
    for split in &splits {
        groups.push((
            format!("split {split}"),
            all.iter().copied().filter(|o| o.split == *split).collect(),
        ));
    }
    let mut langs: Vec<&str> = outcomes.iter().map(|o| o.lang.as_str()).collect();
    langs.sort_unstable();
    langs.dedup();
    if langs.len() > 1 {
        for lang in &langs {
            groups.push((
                format!("language {lang}"),
                all.iter().copied().filter(|o| o.lang == *lang).collect(),
            ));
        }
    }
    if groups.len() > 1 {
        groups.push(("all".to_string(), all.clone()));
    }
    for (name, group) in &groups {
        let s = summarize(levels, group);
        let _ = writeln!(
            out,
            "{name}: {} cases, exact severity {}/{} = {:.1}%",
            s.cases,
            s.correct,
            s.cases,
            s.accuracy * 100.0
        );
    }
    let s = summarize(levels, &all);
    let _ = writeln!(out);
    let _ = writeln!(out, "per level (all cases):");
    let _ = writeln!(out, "  level  precision  recall  support");
    for (l, (p, r, n)) in &s.per_level {
        let _ = writeln!(
            out,
            "  {l:>5}  {:>8.1}%  {:>5.1}%  {n:>7}",
            p * 100.0,
            r * 100.0
        );
    }
    let _ = writeln!(out, "\nconfusion (rows: expected, columns: proposed):");
    let _ = write!(out, "        ");
    for l in levels {
        let _ = write!(out, "{l:>5}");
    }
    let _ = writeln!(out);
    for (e, row) in &s.confusion {
        let _ = write!(out, "  {e:>5} ");
        for n in row.values() {
            let _ = write!(out, "{n:>5}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "\nquestions ({} cases labelled): precision {:.1}%, recall {:.1}%",
        s.question_cases,
        s.question_precision * 100.0,
        s.question_recall * 100.0
    );
    let misses: usize = outcomes.iter().map(|o| o.attribute_misses.len()).sum();
    let _ = writeln!(
        out,
        "attributes: {}/{} labelled values right",
        attribute_checks.saturating_sub(misses),
        attribute_checks
    );
    let wrong: Vec<&Outcome> = outcomes.iter().filter(|o| !o.correct()).collect();
    if !wrong.is_empty() {
        let _ = writeln!(out, "\nmisclassified ({}):", wrong.len());
        for o in wrong {
            match &o.error {
                Some(e) => {
                    let _ = writeln!(out, "  {} [{}]: error: {e}", o.id, o.split);
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  {} [{}]: expected {}, proposed {} by {}: {}",
                        o.id, o.split, o.expected, o.got, o.rule, o.rationale
                    );
                }
            }
        }
    }
    let qwrong: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.correct())
        .filter(|o| {
            o.expected_questions.as_ref().is_some_and(|e| {
                let mut a = e.clone();
                let mut b = o.got_questions.clone();
                a.sort();
                b.sort();
                a != b
            })
        })
        .collect();
    if !qwrong.is_empty() {
        let _ = writeln!(out, "\nright level, other questions ({}):", qwrong.len());
        for o in qwrong {
            let _ = writeln!(
                out,
                "  {}: expected {:?}, asked {:?}",
                o.id,
                o.expected_questions.as_deref().unwrap_or_default(),
                o.got_questions
            );
        }
    }
    let awrong: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !o.attribute_misses.is_empty())
        .collect();
    if !awrong.is_empty() {
        let values: usize = awrong.iter().map(|o| o.attribute_misses.len()).sum();
        let _ = writeln!(
            out,
            "\nattribute misses ({values} values in {} cases):",
            awrong.len()
        );
        for o in awrong {
            for (name, want, got) in &o.attribute_misses {
                let _ = writeln!(out, "  {}: {name} expected {want}, got {got}", o.id);
            }
        }
    }
    out
}

/// How many expected attribute values the cases label.
pub fn attribute_checks(cases: &[Case]) -> usize {
    cases
        .iter()
        .filter_map(|c| c.expected.attributes.as_ref())
        .map(Map::len)
        .sum()
}
