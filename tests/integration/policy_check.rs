//! The policy checker: a broken policy file is refused, with every error listed at once,
//! each with the file name and its line, by `check-config`, by `Policy::from_toml` and
//! before `classify` runs.

use std::path::Path;

use firstline::triage::Policy;
use firstline::triage::policy::EMBEDDED_POLICY;

use crate::{run, run_with_stdin, stderr, stdout};

/// One way to break the policy: replace `from` (must occur in the embedded policy) by `to`;
/// the error is expected on the line where `to` stands, with `says` in its message.
struct Break {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    says: &'static str,
}

const BREAKS: [Break; 6] = [
    Break {
        what: "unknown attribute in a rule's when",
        from: "when = \"component_down\"",
        to: "when = \"component_dwn\"",
        says: "component_dwn",
    },
    Break {
        what: "bad regex in a pattern",
        from: "'''no bootable device'''",
        to: "'''no (bootable device'''",
        says: "regex",
    },
    Break {
        what: "upper-case pattern",
        from: "'''grub rescue'''",
        to: "'''GRUB rescue'''",
        says: "upper-case",
    },
    Break {
        what: "rule that can never fire",
        from: "when = \"function_broken\"",
        to: "when = \"server_down & !server_down\"",
        says: "never fire",
    },
    Break {
        what: "question never asked",
        from: "when = \"rule == s3.default & level == 3\"",
        to: "when = \"known(scope) & unknown(scope)\"",
        says: "never asked",
    },
    Break {
        what: "unknown key (deny_unknown_fields)",
        from: "[policy]\n",
        to: "[policy]\ncolour = \"blue\"\n",
        says: "colour",
    },
];

/// The 1-based line on which `needle` starts (its last line for a multi-line needle that
/// ends with a newline: the line of the new key).
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("'{needle}' is not in the broken policy"));
    let lines_in_needle = needle.trim_end_matches('\n').matches('\n').count();
    text[..at].matches('\n').count() + 1 + lines_in_needle
}

fn apply(text: &str, b: &Break) -> String {
    assert_eq!(
        text.matches(b.from).count(),
        1,
        "{}: '{}' must occur exactly once in the embedded policy",
        b.what,
        b.from
    );
    text.replacen(b.from, b.to, 1)
}

fn broken(breaks: &[&Break]) -> String {
    breaks
        .iter()
        .fold(EMBEDDED_POLICY.to_string(), |t, b| apply(&t, b))
}

/// Where each error of `breaks` is expected: (what, line, words of the message).
fn expected(text: &str, breaks: &[&Break]) -> Vec<(&'static str, usize, &'static str)> {
    breaks
        .iter()
        .map(|b| (b.what, line_of(text, b.to), b.says))
        .collect()
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("broken-policy.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The report lines (`FILE:LINE:COL: message`) that are missing for the expected errors.
fn missing_reports(report: &str, file: &str, want: &[(&str, usize, &str)]) -> Vec<String> {
    want.iter()
        .filter(|(_, line, says)| {
            let at = format!("{file}:{line}:");
            !report
                .lines()
                .any(|l| l.contains(&at) && l.to_lowercase().contains(&says.to_lowercase()))
        })
        .map(|(what, line, says)| format!("{what}: expected '{file}:{line}:… {says} …'"))
        .collect()
}

// Each kind of mistake alone is found and reported on its own line (so that the checks
// themselves work before asking for all of them at once).
#[test]
fn check_config_reports_each_kind_of_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for b in &BREAKS {
        let text = broken(&[b]);
        let file = write(dir.path(), &text);
        let o = run(&["check-config", "--policy", &file]);
        let report = stderr(&o);
        if o.status.code() != Some(1) {
            problems.push(format!(
                "{}: exit {:?}, expected 1",
                b.what,
                o.status.code()
            ));
        }
        for m in missing_reports(&report, &file, &expected(&text, &[b])) {
            problems.push(format!("{m}\n  got: {report}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// A policy author fixes a file in one round: check-config lists every error at once,
// each with the file name and the right line, and exits 1.
#[test]
fn check_config_reports_every_error_at_once_with_file_and_line() {
    let all: Vec<&Break> = BREAKS.iter().collect();
    let text = broken(&all);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), &text);
    let o = run(&["check-config", "--policy", &file]);
    let report = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {report}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("ok"), "{}", stdout(&o));
    let missing = missing_reports(&report, &file, &expected(&text, &all));
    assert!(
        missing.is_empty(),
        "errors not reported:\n{}\n\nthe report was:\n{report}",
        missing.join("\n")
    );
}

// The library gives the same list: `Policy::from_toml` returns every error with its line.
#[test]
fn policy_from_toml_returns_every_error() {
    let all: Vec<&Break> = BREAKS.iter().collect();
    let text = broken(&all);
    let errors = match Policy::from_toml(&text, "broken.toml") {
        Ok(_) => panic!("a broken policy was accepted"),
        Err(e) => e.0,
    };
    let mut missing = Vec::new();
    for (what, line, says) in expected(&text, &all) {
        let found = errors.iter().any(|e| {
            e.file == "broken.toml"
                && e.line == line
                && e.message.to_lowercase().contains(&says.to_lowercase())
        });
        if !found {
            missing.push(format!("{what}: line {line}, '{says}'"));
        }
    }
    assert!(missing.is_empty(), "missing: {missing:?}\ngot: {errors:#?}");
}

// A broken policy never triages: classify refuses to run (exit 1) and says why.
#[test]
fn classify_refuses_to_run_with_a_broken_policy() {
    let all: Vec<&Break> = BREAKS.iter().collect();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), &broken(&all));
    let o = run_with_stdin(
        &["classify", "--policy", &file, "-"],
        "Our production node hn3 is down.\n",
    );
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(&o));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(stderr(&o).contains(&file), "{}", stderr(&o));

    // One mistake is enough to refuse.
    let file = write(dir.path(), &broken(&[&BREAKS[0]]));
    let o = run_with_stdin(
        &["classify", "--json", "--policy", &file],
        "Our production node hn3 is down.\n",
    );
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(&o));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}

// The breaks above start from the real policy: unbroken, it is accepted (so every error
// seen is one the test made).
#[test]
fn the_unbroken_policy_compiles() {
    if let Err(e) = Policy::from_toml(EMBEDDED_POLICY, "config/policy.toml") {
        panic!("{e}");
    }
}
