//! The `firstline` command line as a user runs it: help, `classify` (file, stdin, `--json`,
//! `--jsonl`), errors for bad input, and `check-config`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{run, run_with_stdin, stderr, stdout};

const HOST_DOWN: &str = "Our production node hn3 is down, all containers on it are offline.\n";

/// The keys of the `classify --json` contract (section 4 of the severity policy).
const CONTRACT_KEYS: [&str; 9] = [
    "severity",
    "severity_name",
    "rule",
    "rationale",
    "attributes",
    "evidence",
    "questions",
    "labels",
    "confidence",
];

fn write_temp(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut f, content.as_bytes()).expect("write temp file");
    f
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn parse_json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

// A user who types `--help` must get usage and an example to copy, for the tool and for
// each subcommand.
#[test]
fn help_of_the_tool_and_every_subcommand_shows_an_example() {
    let cases: [&[&str]; 4] = [
        &["--help"],
        &["classify", "--help"],
        &["eval", "--help"],
        &["check-config", "--help"],
    ];
    for args in cases {
        let o = run(args);
        let out = stdout(&o);
        assert!(
            o.status.success(),
            "firstline {args:?} failed: {}",
            stderr(&o)
        );
        assert!(
            out.contains("Usage"),
            "firstline {args:?} shows no usage:\n{out}"
        );
        assert!(
            out.contains("Example"),
            "firstline {args:?} shows no example:\n{out}"
        );
    }
}

// The readable report leads with the severity: a production host down is Severity 1.
#[test]
fn classify_a_text_file_prints_severity_1_for_a_production_host_down() {
    let f = write_temp(HOST_DOWN);
    let o = run(&["classify", f.path().to_str().unwrap()]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("Severity 1"), "{out}");
    assert!(out.contains("Urgent"), "{out}");
}

// `--json` is the contract other programs read: exactly its keys, and evidence items that
// point at the words that decided each fact.
#[test]
fn classify_json_prints_exactly_the_contract_keys_with_usable_evidence() {
    let f = write_temp(HOST_DOWN);
    let o = run(&["classify", "--json", f.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = parse_json(&stdout(&o));
    let expected: BTreeSet<String> = CONTRACT_KEYS.iter().map(|k| k.to_string()).collect();
    assert_eq!(keys(&v), expected, "{v:#}");

    assert_eq!(v["severity"], 1, "{v:#}");
    assert_eq!(v["severity_name"], "Urgent", "{v:#}");
    assert!(v["rule"].as_str().is_some_and(|r| !r.is_empty()), "{v:#}");
    assert!(
        v["rationale"].as_str().is_some_and(|r| !r.is_empty()),
        "{v:#}"
    );
    assert!(
        v["labels"]
            .as_array()
            .is_some_and(|l| l.contains(&"severity:1".into())),
        "{v:#}"
    );
    let confidence = v["confidence"].as_f64().expect("confidence is a number");
    assert!((0.0..=1.0).contains(&confidence), "{v:#}");

    let evidence = v["evidence"].as_array().expect("evidence is an array");
    assert!(
        !evidence.is_empty(),
        "a level-1 decision must show its evidence: {v:#}"
    );
    let attributes = v["attributes"]
        .as_object()
        .expect("attributes is an object");
    for e in evidence {
        let item_keys: BTreeSet<String> = keys(e);
        let want: BTreeSet<String> = ["attribute", "text", "start", "end"]
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(item_keys, want, "evidence item {e}");
        let text = e["text"].as_str().expect("evidence text is a string");
        let start = e["start"].as_u64().expect("start is a number");
        let end = e["end"].as_u64().expect("end is a number");
        assert!(!text.is_empty(), "empty evidence text: {e}");
        assert!(start < end, "evidence {e}: start must be before end");
        // Offsets are bytes of the normalized text, and `text` is that slice.
        assert_eq!((end - start) as usize, text.len(), "evidence {e}");
        let attribute = e["attribute"].as_str().expect("attribute is a string");
        assert!(
            attributes.contains_key(attribute),
            "evidence for '{attribute}', which is not among the attributes: {v:#}"
        );
    }
    for q in v["questions"].as_array().expect("questions is an array") {
        assert!(q["id"].as_str().is_some_and(|s| !s.is_empty()), "{q}");
        assert!(q["text"].as_str().is_some_and(|s| !s.is_empty()), "{q}");
    }
}

// `firstline classify -` reads the message from standard input (pipes, mail filters).
#[test]
fn classify_reads_standard_input_with_dash() {
    let o = run_with_stdin(&["classify", "--json", "-"], HOST_DOWN);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = parse_json(&stdout(&o));
    assert_eq!(v["severity"], 1, "{v:#}");

    // With no file at all, stdin too.
    let o = run_with_stdin(&["classify"], HOST_DOWN);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Severity 1"), "{}", stdout(&o));
}

// A batch must not stop at a bad line: one output line per input line, in order, with the
// id echoed and an error object where the input was bad.
#[test]
fn classify_jsonl_answers_every_line_in_order_and_survives_bad_lines() {
    let input = concat!(
        "{this is not json\n",
        "{\"id\":\"x\"}\n",
        "{\"id\":\"c\",\"text\":\"Power Panel is down for all our customers\"}\n",
    );
    let o = run_with_stdin(&["classify", "--jsonl"], input);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<Value> = out.lines().map(parse_json).collect();
    assert_eq!(lines.len(), 3, "one output line per input line:\n{out}");

    // The invalid line has no id to echo.
    assert!(lines[0]["id"].is_null(), "{}", lines[0]);
    assert!(
        lines[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("JSON")),
        "{}",
        lines[0]
    );
    assert!(lines[0].get("severity").is_none(), "{}", lines[0]);

    assert_eq!(lines[1]["id"], "x", "{}", lines[1]);
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("text")),
        "{}",
        lines[1]
    );
    assert!(lines[1].get("severity").is_none(), "{}", lines[1]);

    assert_eq!(lines[2]["id"], "c", "{}", lines[2]);
    assert!(lines[2].get("error").is_none(), "{}", lines[2]);
    assert_eq!(lines[2]["severity"], 2, "{}", lines[2]);
    for k in CONTRACT_KEYS {
        assert!(lines[2].get(k).is_some(), "missing '{k}': {}", lines[2]);
    }
}

// A batch line may carry a raw email (`eml`): it is parsed like a .eml file.
#[test]
fn classify_jsonl_reads_an_eml_field() {
    let eml = "From: Ops <ops@example.com>\r\nTo: support@example.com\r\nSubject: Production node hn3 is down\r\nMessage-ID: <1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAll containers on hn3 are offline since 08:00.\r\n";
    let line = serde_json::json!({"id": "mail-1", "eml": eml}).to_string();
    let broken = serde_json::json!({"id": "mail-2", "eml": "no headers at all"}).to_string();
    let o = run_with_stdin(&["classify", "--jsonl"], &format!("{line}\n{broken}\n"));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<Value> = out.lines().map(parse_json).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["id"], "mail-1", "{}", lines[0]);
    assert_eq!(lines[0]["severity"], 1, "{}", lines[0]);
    assert_eq!(lines[1]["id"], "mail-2", "{}", lines[1]);
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("eml")),
        "{}",
        lines[1]
    );
}

// A typo in a path must say which file, and exit 2 (bad input), not 0 or a panic.
#[test]
fn classify_of_a_missing_file_exits_2_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-message.eml");
    let o = run(&["classify", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    assert!(
        stderr(&o).contains("no-such-message.eml"),
        "the error must name the file: {}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}

// An empty message is a user mistake (wrong file, empty pipe): say so instead of
// proposing a severity for nothing.
#[test]
fn classify_of_an_empty_message_gives_a_clear_error() {
    let f = write_temp("  \n\n\t\n");
    let o = run(&["classify", f.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "stdout: {}", stdout(&o));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("Severity"), "{}", stdout(&o));

    let o = run_with_stdin(&["classify", "-"], "");
    assert_eq!(o.status.code(), Some(2), "stdout: {}", stdout(&o));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
}

// The policy shipped inside the binary must pass its own checker.
#[test]
fn check_config_accepts_the_embedded_policy() {
    let o = run(&["check-config"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("ok"), "{}", stdout(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

// A batch line that is not UTF-8 gets an error object and the batch goes on.
#[test]
fn jsonl_line_that_is_not_utf8_gets_an_error_and_the_batch_goes_on() {
    use std::io::Write;
    let mut child = crate::bin()
        .args(["classify", "--jsonl"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start firstline");
    let mut input = b"{\"id\":\"a\",\"text\":\"node hn07 is down\"}\n".to_vec();
    input.extend_from_slice(b"\xff\xfe not utf-8\n");
    input.extend_from_slice(b"{\"id\":\"c\",\"text\":\"all CTs offline on hn07\"}\n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write");
    let out = child.wait_with_output().expect("finish");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["id"], "a");
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("UTF-8")),
        "{lines:?}"
    );
    assert_eq!(lines[2]["id"], "c");
    assert_eq!(lines[2]["severity"], 1);
}

// A policy file that cannot be read is bad input (exit 2), named in the message.
#[test]
fn unreadable_policy_file_is_bad_input() {
    let out = crate::run(&["check-config", "--policy", "/nonexistent/policy.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::stderr(&out).contains("/nonexistent/policy.toml"));
}

// An eval over no labelled case has no score: it must not pass a bar, and says why.
#[test]
fn eval_of_an_empty_file_is_bad_input_not_a_pass() {
    let f = write_temp("");
    let o = run(&["eval", f.path().to_str().unwrap(), "--min-accuracy", "99"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no labelled cases"), "{}", stderr(&o));
}

// A reader that stops early (`firstline eval --json … | head`) closes the pipe: the command
// ends quietly with success, it does not panic on the failed write.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = crate::bin()
        .args(["eval", "--json", "fixtures/triage/dev.jsonl"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start firstline");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read the first line");
    // The reader (and the pipe with it) is gone here; the report is far longer than a pipe
    // buffer, so the command's next writes fail.
    let out = child.wait_with_output().expect("wait for firstline");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(first.starts_with('{'), "first line: {first}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert!(
        out.status.success(),
        "status {:?}, stderr: {err}",
        out.status
    );
}
