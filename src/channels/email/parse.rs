//! Raw RFC 5322 messages → the text triage reads (subject, body, text log attachments).

use mail_parser::{MessageParser, MimeHeaders};

/// Why a raw message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a parsable email: no header block was found")]
    NoHeaders,
    #[error("the email has neither a subject nor a readable body")]
    Empty,
}

/// An attachment, listed so an agent sees what came with the message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    pub name: Option<String>,
    pub content_type: String,
    pub size: usize,
}

/// What firstline takes from an email.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParsedEmail {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// The sender's address (From).
    pub from: Option<String>,
    /// The sender's display name, used to greet them.
    pub from_name: Option<String>,
    /// Where a reply goes: Reply-To when given, else From.
    pub reply_to: Option<String>,
    pub subject: Option<String>,
    /// The Date header in RFC 3339, when present and valid.
    pub date: Option<String>,
    /// Message-IDs this message answers (In-Reply-To), without angle brackets.
    pub in_reply_to: Vec<String>,
    /// The thread's earlier Message-IDs (References), oldest first.
    pub references: Vec<String>,
    /// Why the message was sent by a machine (auto-reply, bounce, list, loop), when it was:
    /// such mail is triaged and labelled but never answered.
    pub automatic: Option<String>,
    /// The body as text (HTML-only mail converted), quotes and signatures still in it: the
    /// triage engine tells them apart.
    pub body: String,
    pub attachments: Vec<Attachment>,
    /// Text of `text/plain` attachments that look like logs, read as pasted logs.
    #[serde(skip)]
    pub log_attachments: Vec<String>,
}

/// Largest text attachment read as a pasted log; larger ones are only listed.
const MAX_LOG_ATTACHMENT: usize = 256 * 1024;

impl ParsedEmail {
    /// The text triage reads: the subject, then the body, then text log attachments as a
    /// fenced block so that they count as pasted logs, never as the sender's words.
    pub fn triage_text(&self) -> String {
        let mut out = String::new();
        if let Some(s) = &self.subject {
            out.push_str(s.trim());
            out.push_str("\n\n");
        }
        out.push_str(&self.body);
        // A body that leaves a code fence open would make the attachment's opening fence
        // close it, turning the log into the sender's words: close it first.
        if self.body.matches("```").count() % 2 == 1 {
            out.push_str("\n```\n");
        }
        for log in &self.log_attachments {
            out.push_str("\n\n```\n");
            out.push_str(log);
            out.push_str("\n```\n");
        }
        out
    }
}

/// Whether the bytes look like a raw email: a header block of `Name: value` lines (with
/// folded continuations) ending in a blank line, with at least one header only mail has.
pub fn looks_like_email(raw: &[u8]) -> bool {
    let head = &raw[..raw.len().min(16 * 1024)];
    let text = String::from_utf8_lossy(head);
    let mut mail_only = 0;
    let mut headers = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            return headers >= 2 && mail_only >= 1;
        }
        if line.starts_with([' ', '\t']) {
            if headers == 0 {
                return false;
            }
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return false;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return false;
        }
        headers += 1;
        if matches!(
            name.to_ascii_lowercase().as_str(),
            "message-id"
                | "mime-version"
                | "received"
                | "from"
                | "return-path"
                | "delivered-to"
                | "content-type"
        ) {
            mail_only += 1;
        }
    }
    false
}

/// Parses a raw email with mail-parser: charsets and transfer encodings decoded, HTML-only
/// bodies converted to text, attachments listed.
pub fn parse_email(raw: &[u8]) -> Result<ParsedEmail, ParseError> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(ParseError::NoHeaders)?;
    if msg.headers().is_empty() {
        return Err(ParseError::NoHeaders);
    }
    let body = (0..msg.text_body_count().max(1))
        .filter_map(|i| msg.body_text(i))
        .map(|b| b.into_owned())
        .collect::<Vec<_>>()
        .join("\n\n");
    let subject = msg.subject().map(str::to_string);
    if body.trim().is_empty() && subject.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Err(ParseError::Empty);
    }
    let mut attachments = Vec::new();
    let mut log_attachments = Vec::new();
    for part in msg.attachments() {
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let name = part.attachment_name().map(str::to_string);
        let size = part.contents().len();
        let is_log = content_type == "text/plain"
            && name
                .as_deref()
                .map(str::to_ascii_lowercase)
                .is_some_and(|n| n.ends_with(".log") || n.ends_with(".txt") || n.contains("log"));
        if is_log && size <= MAX_LOG_ATTACHMENT {
            log_attachments.push(String::from_utf8_lossy(part.contents()).into_owned());
        }
        attachments.push(Attachment {
            name,
            content_type,
            size,
        });
    }
    let first = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first()).map(|a| {
            (
                a.address().map(str::to_string),
                a.name().map(str::to_string),
            )
        })
    };
    let (from, from_name) = first(msg.from()).unwrap_or_default();
    let reply_to = first(msg.reply_to()).and_then(|(a, _)| a).or(from.clone());
    let automatic = super::loops::automatic_reason(&msg, from.as_deref());
    Ok(ParsedEmail {
        message_id: msg.message_id().map(str::to_string),
        from,
        from_name,
        reply_to,
        subject,
        date: msg.date().map(|d| d.to_rfc3339()),
        in_reply_to: id_list(msg.in_reply_to()),
        references: id_list(msg.references()),
        automatic,
        body,
        attachments,
        log_attachments,
    })
}

/// Message-IDs of an In-Reply-To or References header, brackets already removed by
/// mail-parser.
fn id_list(value: &mail_parser::HeaderValue) -> Vec<String> {
    match value {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_emails_but_not_prose_with_colons() {
        assert!(looks_like_email(
            b"From: a@b.c\r\nSubject: hi\r\nMessage-ID: <1@b.c>\r\n\r\nbody"
        ));
        assert!(!looks_like_email(
            b"Subject: server down\n\nall CTs offline"
        ));
        assert!(!looks_like_email(b"Note: the server is down\nplease help"));
        assert!(!looks_like_email(b"prod HN down!!!"));
    }

    #[test]
    fn html_only_mail_becomes_text() {
        let raw = b"From: a@b.c\r\nSubject: =?utf-8?q?Server_l=C3=A4uft_nicht?=\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>The <b>node</b> is down</p></body></html>";
        let m = parse_email(raw).unwrap();
        assert_eq!(m.subject.as_deref(), Some("Server läuft nicht"));
        assert!(m.body.contains("node"), "{}", m.body);
        assert!(!m.body.contains("<b>"), "{}", m.body);
    }
}
