//! Raw RFC 5322 messages → the text triage reads (subject, body, text log attachments).

use mail_parser::{HeaderName, MessageParser, MimeHeaders, PartType};

use crate::triage::text::decode_entities;

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
    // mail-parser reads any bytes as a message, taking lines of binary junk for header names:
    // a message has at least one header it knows (From, Subject, Received, Content-Type...).
    if !msg
        .headers()
        .iter()
        .any(|h| !matches!(h.name, HeaderName::Other(_)))
    {
        return Err(ParseError::NoHeaders);
    }
    let body = (0..msg.text_body_count())
        .filter_map(|i| msg.text_part(u32::try_from(i).ok()?))
        .filter_map(|part| match &part.body {
            // The same message read from a Maildir file (LF) or over IMAP (CRLF) gives the
            // same body.
            PartType::Text(text) => Some(text.replace("\r\n", "\n")),
            PartType::Html(html) => Some(html_to_text(html)),
            _ => None,
        })
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
            log_attachments.push(String::from_utf8_lossy(part.contents()).replace("\r\n", "\n"));
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
        // mail-parser also returns dates it could not make sense of ("2025-05-00T…").
        date: msg.date().filter(|d| d.is_valid()).map(|d| d.to_rfc3339()),
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

/// HTML → text for mail that has no text part. mail-parser's own conversion breaks lines only
/// at `<br>` and `</p>`, which glued `<div>Hi,</div><div>the node is down</div>` into "Hi,the
/// node is down" and a table's cells into one word. Here every block element starts a line,
/// table cells are set apart by tabs, `<pre>` keeps its lines, list items get a dash and
/// `<blockquote>` lines are quoted with "> ", as a mail client quotes in plain text, so that
/// the triage engine tells the quote from the sender's words. `<head>`, style sheets, scripts
/// and comments (Outlook's conditional ones too) are dropped; entities are decoded with
/// mail-parser's table.
fn html_to_text(html: &str) -> String {
    const BLOCKS: &[&str] = &[
        "address", "article", "aside", "body", "caption", "center", "dd", "div", "dl", "dt",
        "fieldset", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
        "html", "main", "nav", "ol", "p", "section", "table", "tr", "ul",
    ];
    let html = html.replace("\r\n", "\n");
    let mut w = TextWriter::default();
    let mut in_head = false;
    let mut rest = html.as_str();
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if !in_head {
                w.text(rest);
            }
            break;
        };
        if !in_head {
            w.text(&rest[..lt]);
        }
        rest = &rest[lt..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        // A '<' that opens no tag ("load < 5") is text.
        if !rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || "/!?".contains(c)) {
            if !in_head {
                w.text("<");
            }
            rest = &rest[1..];
            continue;
        }
        let end = tag_end(rest);
        let tag = &rest[1..end];
        rest = rest.get(end + 1..).unwrap_or("");
        let closing = tag.starts_with('/');
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match name.as_str() {
            "head" => in_head = !closing,
            "body" => {
                in_head = false;
                w.soft_break();
            }
            // Raw text up to the closing tag, never shown.
            "style" | "script" | "template" | "title" if !closing => {
                let lower = rest.to_ascii_lowercase();
                rest = lower
                    .find(&format!("</{name}"))
                    .and_then(|at| rest[at..].find('>').map(|gt| &rest[at + gt + 1..]))
                    .unwrap_or("");
            }
            _ if in_head => {}
            "br" => w.hard_break(),
            "pre" => {
                w.soft_break();
                w.pre = if closing {
                    w.pre.saturating_sub(1)
                } else {
                    w.pre + 1
                };
            }
            "blockquote" => {
                w.soft_break();
                w.quote = if closing {
                    w.quote.saturating_sub(1)
                } else {
                    w.quote + 1
                };
            }
            "li" => {
                w.soft_break();
                w.bullet = !closing;
            }
            "td" | "th" if !closing => w.cell = w.line_has_text,
            n if BLOCKS.contains(&n) => w.soft_break(),
            _ => {}
        }
    }
    w.finish()
}

/// The index of the '>' closing the tag that `s` starts with: quoted attribute values may hold
/// a '>'; an unclosed quote falls back to the first '>'; no '>' at all ends the input.
fn tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (None, '>') => return i,
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            _ => {}
        }
    }
    s.find('>').unwrap_or(s.len())
}

/// The text of an HTML body as it is built: lines, the pending space between words, the
/// depth of `<pre>` and `<blockquote>`, a pending list dash.
#[derive(Default)]
struct TextWriter {
    out: String,
    /// Something was written on the current line (a quote prefix alone does not count).
    line_has_text: bool,
    /// Whitespace was seen since the last word: the next word on this line is set apart.
    space: bool,
    quote: usize,
    pre: usize,
    /// A list item started: its first word gets a dash.
    bullet: bool,
    /// A table cell started after text on the line: a tab sets it apart.
    cell: bool,
}

impl TextWriter {
    /// Text between tags: whitespace collapsed (kept as is inside `<pre>`), entities decoded.
    fn text(&mut self, raw: &str) {
        if self.pre > 0 {
            for (i, line) in raw.split('\n').enumerate() {
                if i > 0 {
                    self.hard_break();
                }
                if !line.is_empty() {
                    self.word(&decode_entities(line));
                }
            }
            return;
        }
        let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c');
        // Whitespace before or after the run sets it apart from the text of the tags around.
        if raw.starts_with(is_space) {
            self.space = true;
        }
        for (i, word) in raw.split(is_space).filter(|w| !w.is_empty()).enumerate() {
            if i > 0 {
                self.space = true;
            }
            self.word(&decode_entities(word));
        }
        if raw.ends_with(is_space) {
            self.space = true;
        }
    }

    /// A word, after the quote prefix and list dash at the start of a line, or after a space
    /// when one was seen.
    fn word(&mut self, word: &str) {
        if !self.line_has_text {
            self.prefix();
            if self.bullet {
                self.out.push_str("- ");
                self.bullet = false;
            }
            self.line_has_text = true;
        } else if self.cell {
            self.out.push('\t');
        } else if self.space {
            self.out.push(' ');
        }
        self.out.push_str(word);
        self.space = false;
        self.cell = false;
    }

    fn prefix(&mut self) {
        for _ in 0..self.quote {
            self.out.push_str("> ");
        }
    }

    /// A block boundary: the next text starts a line, but no empty line is made.
    fn soft_break(&mut self) {
        if self.line_has_text {
            self.out.push('\n');
            self.line_has_text = false;
        }
        self.space = false;
        self.cell = false;
    }

    /// `<br>`: always ends a line, an empty one too.
    fn hard_break(&mut self) {
        if !self.line_has_text {
            self.prefix();
        }
        self.out.push('\n');
        self.line_has_text = false;
        self.space = false;
        self.cell = false;
    }

    /// Lines without trailing blanks (a line of `&nbsp;` is an empty line), at most one empty
    /// line in a row, none at the start or the end.
    fn finish(self) -> String {
        let mut out = String::with_capacity(self.out.len());
        let mut blank = false;
        for line in self.out.lines() {
            let line = line.replace('\u{a0}', " ");
            let line = line.trim_end();
            if line.is_empty() {
                blank = !out.is_empty();
                continue;
            }
            if blank {
                out.push('\n');
                blank = false;
            }
            out.push_str(line);
            out.push('\n');
        }
        out
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
    fn html_blocks_cells_quotes_and_entities_become_readable_text() {
        let html = "<html><head><title>t</title><style>p{color:red}</style></head><body>\
            <!--[if mso]><xml>x</xml><![endif]--><div>Hi,</div><div>CT&nbsp;101 is <b>down</b> \
            &ndash; load < 1 &amp; R&D</div><div><br></div><table><tr><td>CT</td><td>101</td>\
            </tr></table><ul><li>one</li><li><p>two</p></li></ul><pre>a\n  b</pre>\
            <blockquote><div>old</div><div><br></div><div>words</div></blockquote>\
            <p><a href='x>y'>link</a></p>";
        assert_eq!(
            html_to_text(html),
            "Hi,\nCT 101 is down – load < 1 & R&D\n\nCT\t101\n- one\n- two\na\n  b\n\
             > old\n>\n> words\nlink\n"
        );
    }

    #[test]
    fn junk_bytes_are_not_an_email_and_an_impossible_date_is_none() {
        let junk = b"\x1f\x8b\x08\x00binary\x00junk\nmore: \xff\xfe\n\nbody";
        assert_eq!(parse_email(junk), Err(ParseError::NoHeaders));
        let raw =
            b"From: a@b.c\r\nSubject: x\r\nDate: Thu, 00 May 2025 10:12:33 +0200\r\n\r\nbody\r\n";
        let m = parse_email(raw).unwrap();
        assert_eq!(m.date, None);
        assert_eq!(m.body, "body\n");
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
