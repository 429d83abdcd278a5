//! Mail loop and noise protection: telling machine-sent mail (auto-replies, bounces, lists,
//! other bots) from a person's, so that firstline never answers a machine.

use mail_parser::{Message, MimeHeaders};

/// Local parts of sender addresses that are never a person.
const MACHINE_SENDERS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "no-reply",
    "noreply",
    "do-not-reply",
    "donotreply",
    "do_not_reply",
    "bounce",
    "bounces",
];

/// Why a message was sent by a machine, or `None` for a person's mail. Such mail is recorded,
/// triaged and labelled, but never answered: answering it is how mail loops start.
pub fn automatic_reason(msg: &Message, from: Option<&str>) -> Option<String> {
    let header = |name: &str| {
        msg.header_raw(name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    // RFC 3834: anything but "no" is machine-sent; parameters follow a ';' and comments may
    // stand anywhere ("no (sent by hand)" is a person's).
    if let Some(v) = header("Auto-Submitted") {
        let kind = without_comments(&v)
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if kind != "no" && !kind.is_empty() {
            return Some(format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(v) = header("Precedence") {
        let p = v.trim().to_ascii_lowercase();
        if matches!(p.as_str(), "bulk" | "list" | "junk" | "auto_reply") {
            return Some(format!("Precedence: {v}"));
        }
    }
    for name in [
        "X-Loop",
        "X-Auto-Response-Suppress",
        "X-Autoreply",
        "X-Autorespond",
        "List-Id",
    ] {
        if let Some(v) = header(name) {
            return Some(format!("{name}: {v}"));
        }
    }
    if let Some(ct) = msg.root_part().content_type()
        && ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        let kind = ct.attribute("report-type").unwrap_or("unknown");
        return Some(format!(
            "delivery or read report (multipart/report; {kind})"
        ));
    }
    if let Some(rp) = header("Return-Path")
        && rp.trim() == "<>"
    {
        return Some("empty Return-Path (sent by a mail server)".to_string());
    }
    if let Some(addr) = from {
        let local = addr.split('@').next().unwrap_or("").to_ascii_lowercase();
        if MACHINE_SENDERS.contains(&local.as_str()) {
            return Some(format!("sent by {addr}, a machine address"));
        }
    }
    None
}

/// A header value without its RFC 5322 comments (parenthesized, possibly nested).
fn without_comments(value: &str) -> String {
    let mut depth = 0usize;
    value
        .chars()
        .filter(|&c| {
            match c {
                '(' => depth += 1,
                ')' if depth > 0 => {
                    depth -= 1;
                    return false;
                }
                _ => {}
            }
            depth == 0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn reason(headers: &str) -> Option<String> {
        let raw = format!("{headers}\r\nSubject: x\r\n\r\nbody\r\n");
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let from = msg
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string);
        automatic_reason(&msg, from.as_deref())
    }

    #[test]
    fn people_are_not_machines() {
        assert_eq!(reason("From: Ann <ann@example.com>"), None);
        assert_eq!(reason("From: ann@example.com\r\nAuto-Submitted: no"), None);
        assert_eq!(
            reason("From: ann@example.com\r\nAuto-Submitted: no (typed by hand)"),
            None
        );
        assert_eq!(
            reason("From: ann@example.com\r\nPrecedence: first-class"),
            None
        );
    }

    #[test]
    fn machines_are_named_with_the_header_that_gave_them_away() {
        let cases = [
            (
                "From: a@b.c\r\nAuto-Submitted: auto-replied",
                "Auto-Submitted",
            ),
            (
                "From: a@b.c\r\nAuto-Submitted: auto-generated; x=1",
                "Auto-Submitted",
            ),
            (
                "From: a@b.c\r\nAuto-Submitted: (sendmail) auto-generated (failure)",
                "Auto-Submitted",
            ),
            ("From: a@b.c\r\nPrecedence: bulk", "Precedence"),
            ("From: a@b.c\r\nPrecedence: JUNK", "Precedence"),
            ("From: a@b.c\r\nX-Loop: support@vendor", "X-Loop"),
            (
                "From: a@b.c\r\nX-Auto-Response-Suppress: All",
                "X-Auto-Response-Suppress",
            ),
            ("From: MAILER-DAEMON@mx.example.com", "machine address"),
            ("From: no-reply@example.com", "machine address"),
            ("From: a@b.c\r\nReturn-Path: <>", "Return-Path"),
            (
                "From: a@b.c\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=x",
                "multipart/report",
            ),
        ];
        for (headers, expect) in cases {
            let r = reason(headers).unwrap_or_else(|| panic!("{headers:?} was not automatic"));
            assert!(r.contains(expect), "{headers:?} → {r}");
        }
    }
}
