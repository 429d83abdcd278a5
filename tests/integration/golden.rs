//! Golden tests of the email parser: every `fixtures/email/NAME.eml` is parsed with
//! `parse_email` and the result, as JSON, is compared with `fixtures/email/NAME.json` next
//! to it. The JSON is `serde_json::to_string_pretty` of the `ParsedEmail`, or
//! `{"error": "<the ParseError's message>"}` for a message that must be refused. The two are
//! compared as JSON values, so key order and whitespace do not matter.
//!
//! Every .eml needs its .json, and every .json its .eml. On a mismatch the actual output is
//! written to `fixtures/email/NAME.actual.json` (gitignored) so that a reviewer can diff the
//! two files; all mismatches are collected and reported together.
//!
//! To accept the parser's current output as the new expectation (after a deliberate change
//! of the parser, or for a new fixture), run
//!
//! ```sh
//! FIRSTLINE_BLESS=1 cargo test --test integration golden
//! ```
//!
//! which rewrites every expected .json, and then read the diff of the .json files before
//! committing them: a blessed file is only as right as the reviewer who read it.

use std::fs;
use std::path::{Path, PathBuf};

use firstline::channels::email::parse::parse_email;
use serde_json::Value;

use crate::repo_path;

/// The JSON the parser gives for one raw message, pretty-printed with a final newline.
fn actual_json(raw: &[u8]) -> String {
    let value = match parse_email(raw) {
        Ok(parsed) => serde_json::to_value(&parsed).expect("a ParsedEmail serializes"),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    let mut text = serde_json::to_string_pretty(&value).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// Files of `dir` with the extension `ext`, sorted by name; `.actual.json` files are never
/// expectations.
fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .filter(|p| !p.to_string_lossy().ends_with(".actual.json"))
        .collect();
    files.sort();
    files
}

fn show(path: &Path) -> String {
    let root = repo_path("");
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_email_fixture_parses_to_its_golden_json() {
    let dir = repo_path("fixtures/email");
    let bless = std::env::var_os("FIRSTLINE_BLESS").is_some_and(|v| v == "1");
    let emails = files_with_extension(&dir, "eml");
    assert!(!emails.is_empty(), "no .eml fixture in {}", dir.display());

    let mut problems = Vec::new();
    for eml in &emails {
        let raw = fs::read(eml).unwrap_or_else(|e| panic!("{}: {e}", eml.display()));
        let actual_text = actual_json(&raw);
        let expected_path = eml.with_extension("json");
        let actual_path = eml.with_extension("actual.json");

        if bless {
            fs::write(&expected_path, &actual_text)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
            let _ = fs::remove_file(&actual_path);
            continue;
        }

        let expected_text = match fs::read_to_string(&expected_path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!(
                    "{}: no golden file {} ({e}); create it with FIRSTLINE_BLESS=1 and read it",
                    show(eml),
                    show(&expected_path)
                ));
                continue;
            }
        };
        let expected: Value = match serde_json::from_str(&expected_text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: not valid JSON: {e}", show(&expected_path)));
                continue;
            }
        };
        let actual: Value = serde_json::from_str(&actual_text).expect("our own JSON parses");
        if actual == expected {
            // A stale .actual.json from an earlier failing run would only mislead.
            let _ = fs::remove_file(&actual_path);
        } else {
            fs::write(&actual_path, &actual_text)
                .unwrap_or_else(|e| panic!("{}: {e}", actual_path.display()));
            problems.push(format!(
                "{}: parsed output differs from the golden file: diff {} {}",
                show(eml),
                show(&expected_path),
                show(&actual_path)
            ));
        }
    }

    // A golden file whose message is gone tests nothing: say so rather than keep it silently.
    for json in files_with_extension(&dir, "json") {
        if !json.with_extension("eml").exists() {
            problems.push(format!(
                "{}: no {} next to it",
                show(&json),
                show(&json.with_extension("eml"))
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "{} problem(s) in the golden test of {} email fixtures (FIRSTLINE_BLESS=1 rewrites \
         the expected .json; read it before committing):\n  {}",
        problems.len(),
        emails.len(),
        problems.join("\n  ")
    );
}

// The golden JSON leaves out the text of log attachments (it is not serialized): a text log
// under the limit is read as a pasted log, one over it (~300 KB) is only listed.
#[test]
fn a_log_attachment_over_the_limit_is_listed_but_not_read() {
    let read = |name: &str| {
        let path = repo_path(&format!("fixtures/email/{name}.eml"));
        let raw = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        parse_email(&raw).unwrap_or_else(|e| panic!("{name}.eml: {e}"))
    };
    let small = read("log-attachment");
    assert_eq!(small.log_attachments.len(), 1, "{:?}", small.attachments);

    let large = read("attachment-large-log");
    assert_eq!(large.attachments.len(), 1, "{:?}", large.attachments);
    assert!(
        large.attachments[0].size > 256 * 1024,
        "{:?}",
        large.attachments
    );
    assert!(large.log_attachments.is_empty(), "the large log was read");
    assert!(!large.triage_text().contains("hn-par-02 kernel"));
}
