//! The email channel: raw `.eml` fixtures (fixtures/email/) are detected, decoded (charsets,
//! transfer encodings, HTML, multipart, attachments) and triaged to the expected level.

use firstline::channels::email::parse::{ParsedEmail, looks_like_email, parse_email};
use firstline::input::message_text;
use firstline::triage::{Decision, triage};
use serde_json::Value;

use crate::{POLICY, repo_path, run, stderr, stdout};

const FIXTURES: [&str; 11] = [
    "plain",
    "html-only",
    "quoted-printable",
    "base64",
    "iso-8859-1",
    "multipart-alternative",
    "reply",
    "forward",
    "auto-reply",
    "no-subject",
    "log-attachment",
];

fn raw(name: &str) -> Vec<u8> {
    let path = repo_path(&format!("fixtures/email/{name}.eml"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parsed(name: &str) -> ParsedEmail {
    parse_email(&raw(name)).unwrap_or_else(|e| panic!("{name}.eml: {e}"))
}

/// Triage of the .eml as `firstline classify FILE` reads it.
fn decide(name: &str) -> Decision {
    let text = message_text(&raw(name)).unwrap_or_else(|e| panic!("{name}.eml: {e}"));
    triage(&POLICY, &text).1
}

fn show(d: &Decision) -> String {
    format!(
        "severity {} by {}, attributes {}, questions {:?}",
        d.severity,
        d.rule,
        Value::Object(d.attributes.clone()),
        d.questions
            .iter()
            .map(|q| q.id.as_str())
            .collect::<Vec<_>>()
    )
}

fn flag(d: &Decision, name: &str) -> Option<bool> {
    d.attributes.get(name).and_then(Value::as_bool)
}

// Every fixture is recognized as an email (so `classify` parses it), and prose with a
// colon is not.
#[test]
fn every_fixture_is_detected_as_an_email_and_prose_is_not() {
    for name in FIXTURES {
        assert!(
            looks_like_email(&raw(name)),
            "{name}.eml is not detected as an email"
        );
    }
    assert!(!looks_like_email(
        b"Note: the server is down\nplease help\n"
    ));
    let prose = "Note: our node hn3 is down\n\nplease help";
    assert_eq!(message_text(prose.as_bytes()).unwrap(), prose);
}

// A plain text mail: subject and body as written, sender and id kept; a host down with a
// phone number in the signature is level 1 and does not ask for the phone.
#[test]
fn plain_text_mail_is_read_and_triaged_as_level_1() {
    let m = parsed("plain");
    assert_eq!(m.subject.as_deref(), Some("Production node hn3 is down"));
    assert_eq!(m.from.as_deref(), Some("anna.berg@shop-hosting.example"));
    assert_eq!(
        m.message_id.as_deref(),
        Some("plain-1@shop-hosting.example")
    );
    assert!(
        m.body.contains("customers cannot reach their sites"),
        "{}",
        m.body
    );
    assert!(m.attachments.is_empty(), "{:?}", m.attachments);

    let d = decide("plain");
    assert_eq!(d.severity, 1, "{}", show(&d));
    assert_eq!(
        d.attributes.get("contact_phone").and_then(Value::as_str),
        Some("+49301234567"),
        "{}",
        show(&d)
    );
    assert!(!d.questions.iter().any(|q| q.id == "phone"), "{}", show(&d));
}

// `firstline classify FILE.eml` detects the mail and prints the same level.
#[test]
fn classify_command_reads_an_eml_file() {
    let path = repo_path("fixtures/email/plain.eml");
    let o = run(&["classify", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Severity 1"), "{}", stdout(&o));
}

// HTML-only mail becomes text: no tags, no style sheet, the words joined as read.
#[test]
fn html_only_mail_becomes_text_without_tags() {
    let m = parsed("html-only");
    assert!(
        m.body.contains("Power Panel is down for all our customers"),
        "{}",
        m.body
    );
    for markup in ["<p>", "<b>", "</i>", "<div", "<html", "color: #333"] {
        assert!(
            !m.body.contains(markup),
            "'{markup}' left in the body: {}",
            m.body
        );
    }
    let d = decide("html-only");
    assert_eq!(flag(&d, "component_down"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
}

// Quoted-printable: UTF-8 escapes decoded, soft line breaks joined ("cras=\nhes"), and an
// encoded-word subject decoded.
#[test]
fn quoted_printable_body_and_encoded_subject_are_decoded() {
    let m = parsed("quoted-printable");
    assert_eq!(
        m.subject.as_deref(),
        Some("vz service crashes on our production node – urgent")
    );
    assert!(
        m.body.contains("nürnberg-07 crashes every time"),
        "{}",
        m.body
    );
    assert!(m.body.contains("Grüße"), "{}", m.body);
    assert!(!m.body.contains("=C3"), "{}", m.body);
    assert!(!m.body.contains("=\n"), "{}", m.body);

    let d = decide("quoted-printable");
    assert_eq!(flag(&d, "virtualization_down"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 1, "{}", show(&d));
}

// Base64 bodies are decoded; a typo report is level 4.
#[test]
fn base64_body_is_decoded() {
    let m = parsed("base64");
    assert!(
        m.body.contains("\"Sing in\" instead of \"Sign in\""),
        "{}",
        m.body
    );
    assert!(!m.body.contains("SGVsbG8"), "{}", m.body);
    let d = decide("base64");
    assert_eq!(flag(&d, "cosmetic"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 4, "{}", show(&d));
}

// ISO-8859-1 bytes (body and encoded-word headers) become the right umlauts.
#[test]
fn iso_8859_1_umlauts_are_decoded() {
    let m = parsed("iso-8859-1");
    assert_eq!(
        m.subject.as_deref(),
        Some("Backup für Container 101 (Müller GmbH)")
    );
    for words in ["Müller GmbH in Köln", "Grüße", "Jürgen Weiß"] {
        assert!(
            m.body.contains(words),
            "'{words}' not in the body: {}",
            m.body
        );
    }
    assert!(!m.body.contains('\u{fffd}'), "{}", m.body);

    // One container's backup failed: level 3.
    let d = decide("iso-8859-1");
    assert_eq!(flag(&d, "backup_failed"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
}

// multipart/alternative: the text part is read once, the HTML twin is not added to it.
#[test]
fn multipart_alternative_reads_the_text_part_once() {
    let m = parsed("multipart-alternative");
    assert_eq!(m.body.matches("live migration").count(), 1, "{}", m.body);
    assert!(
        !m.body.contains("<p>") && !m.body.contains("<b>"),
        "{}",
        m.body
    );
    assert!(m.attachments.is_empty(), "{:?}", m.attachments);

    let d = decide("multipart-alternative");
    assert_eq!(flag(&d, "function_broken"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
}

// A reply: the quote stays in the body (the engine tells it apart), and the sender's new
// words ("the backups are working again") decide, not the quoted old failure.
#[test]
fn reply_is_triaged_by_the_new_words_not_the_quote() {
    let m = parsed("reply");
    assert!(m.body.contains("wrote:"), "{}", m.body);
    assert!(m.body.contains("> backups fail"), "{}", m.body);

    let d = decide("reply");
    assert_ne!(flag(&d, "backup_failed"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
}

// A forward with no comment of its own: the forwarded message is what the sender reports.
#[test]
fn forward_without_comment_is_triaged_by_the_forwarded_text() {
    let m = parsed("forward");
    assert_eq!(m.subject.as_deref(), Some("Fwd: from our NOC"));
    assert!(m.body.contains("Forwarded message"), "{}", m.body);

    let d = decide("forward");
    assert_eq!(flag(&d, "component_down"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
}

// An out-of-office auto-reply reports no failure: it must not raise a 1 or 2 (even though
// it says "urgent matters").
#[test]
fn auto_reply_is_not_a_failure() {
    let m = parsed("auto-reply");
    assert!(m.body.contains("out of the office"), "{}", m.body);
    let d = decide("auto-reply");
    assert_eq!(d.severity, 3, "{}", show(&d));
    for failure in [
        "server_down",
        "ve_unavailable",
        "component_down",
        "function_broken",
    ] {
        assert_ne!(flag(&d, failure), Some(true), "{}", show(&d));
    }
}

// No Subject header: no subject, the body alone is read; a how-to question is level 4.
#[test]
fn mail_without_subject_reads_the_body() {
    let m = parsed("no-subject");
    assert_eq!(m.subject, None);
    assert!(m.body.contains("How do I enable IPv6"), "{}", m.body);
    assert!(
        m.triage_text().starts_with("How do I enable IPv6"),
        "{}",
        m.triage_text()
    );

    let d = decide("no-subject");
    assert_eq!(flag(&d, "question"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 4, "{}", show(&d));
}

// A text/plain .log attachment is listed and read as a pasted log (fenced): the failure in
// it counts when the sender's words say nothing against it.
#[test]
fn log_attachment_is_listed_and_read_as_a_pasted_log() {
    let m = parsed("log-attachment");
    assert_eq!(m.attachments.len(), 1, "{:?}", m.attachments);
    let a = &m.attachments[0];
    assert_eq!(a.name.as_deref(), Some("vzabackup.log"));
    assert_eq!(a.content_type, "text/plain");
    assert!(a.size > 0, "{a:?}");
    assert!(
        !m.body.contains("no space left"),
        "the log leaked into the body: {}",
        m.body
    );
    assert_eq!(m.log_attachments.len(), 1, "{:?}", m.log_attachments);
    assert!(m.log_attachments[0].contains("backup of all containers failed"));
    let text = m.triage_text();
    assert!(
        text.contains("```\n2025-05-12 02:00:01 vzabackup"),
        "the log must be fenced: {text}"
    );

    let d = decide("log-attachment");
    assert_eq!(flag(&d, "backup_failed"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
    // Evidence only from a log weighs less than the same failure in the sender's words.
    let own = triage(
        &POLICY,
        "Nightly backup report from hn2\n\nThe backup of all containers failed on our production node hn2.",
    )
    .1;
    assert_eq!(own.severity, d.severity, "{}", show(&own));
    assert!(
        d.confidence < own.confidence,
        "log-only confidence {} is not below own-words confidence {}",
        d.confidence,
        own.confidence
    );
}
