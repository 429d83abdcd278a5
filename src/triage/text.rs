//! Text normalization and structure: which lines are the sender's own words, which are quoted,
//! forwarded, signature, template or pasted log.
//!
//! The output is one normalized string (NFKC, case-folded, whitespace collapsed, wrapped lines
//! of a paragraph joined) and the byte ranges of it that each kind of text occupies. Evidence
//! offsets point into this string.

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::facts::Source;
use super::policy::{LineMatch, TextRules};

/// A stretch of the normalized text and what it is; `source: None` is structure (template
/// headings, placeholders, quote/forward headers) that never creates a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub end: usize,
    pub source: Option<Source>,
}

/// A message ready for matching.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    pub text: String,
    pub segments: Vec<Segment>,
}

impl Normalized {
    /// What kind of text the byte at `at` lies in; `None` for structure and line breaks.
    pub fn source_at(&self, at: usize) -> Option<Source> {
        let i = self.segments.partition_point(|s| s.end <= at);
        let seg = self.segments.get(i)?;
        (seg.start <= at).then_some(seg.source).flatten()
    }

    /// What kind of text the byte range lies in; `None` when it is structure or crosses segments.
    pub fn source_of(&self, start: usize, end: usize) -> Option<Source> {
        let i = self.segments.partition_point(|s| s.end <= start);
        let seg = self.segments.get(i)?;
        (seg.start <= start && end <= seg.end)
            .then_some(seg.source)
            .flatten()
    }
}

static HTML_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)<!--.*?-->|</?[a-z][a-z0-9]*(?:\s[^<>]*)?/?>").expect("static regex")
});
static BLOCK_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)<br\s*/?>|</?(?:p|div|li|tr|table|ul|ol|h[1-6]|blockquote|pre)(?:\s[^<>]*)?>")
        .expect("static regex")
});
static REPLY_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:re|aw|sv|antw|odp|fw|fwd|wg|tr)\s*(?:\[\d+\])?\s*:").expect("static regex")
});
static MD_IMAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"!\[[^\]]*\]\([^)]*\)").expect("static regex"));
static MD_LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([^\]]*)\]\((?:https?|mailto):[^)]*\)").expect("static regex"));
/// A box, ticked or not, anywhere in a line.
static BOX: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[([ xX✓✔])\]").expect("static regex"));

static HTML_HINT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)</|<br|<p>|<div").expect("static regex"));

/// Whether the message is HTML: a closing tag, a line break, paragraph or div in its first
/// 64 KiB.
fn looks_like_html(s: &str) -> bool {
    HTML_HINT.is_match(&s[..s.floor_char_boundary(64 * 1024)])
}

/// Decodes the character references of `word` (`&amp;`, `&rsquo;`, `&#8217;`...) with
/// mail-parser's entity table; a '&' that starts none stays as it is, and what a reference
/// yields is not read again ("&amp;lt;" is "&lt;"). Used by the email parser's HTML converter
/// and by [`normalize`] for entities left in plain text.
pub fn decode_entities(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let reference = rest[1..]
            .find(';')
            .filter(|&semi| {
                semi > 0
                    && semi <= 32
                    && rest[1..=semi]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'#')
            })
            .map(|semi| &rest[..semi + 2]);
        match reference {
            Some(r) => {
                out.push_str(&mail_parser::decoders::html::html_to_text(r));
                rest = &rest[r.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Removes markup that is structure, not words: HTML tags and entities, Markdown images and
/// link targets. Line structure is kept.
fn strip_markup(raw: &str) -> String {
    let mut s = if looks_like_html(raw) {
        // Block tags end a line; any other tag separates words ("down<b>now" is two words).
        let with_breaks = BLOCK_TAG.replace_all(raw, "\n");
        HTML_TAG.replace_all(&with_breaks, " ").into_owned()
    } else {
        raw.to_string()
    };
    if s.contains('&') {
        s = decode_entities(&s);
    }
    if s.contains("](") {
        s = MD_IMAGE.replace_all(&s, " ").into_owned();
        s = MD_LINK.replace_all(&s, "$1").into_owned();
    }
    s
}

/// Case-folds and NFKC-normalizes one line, collapsing runs of white space to one space and
/// typographic apostrophes to `'`. ASCII text takes a fast path.
pub fn fold_into(line: &str, out: &mut String) {
    let from = out.len();
    let mut last_space = true;
    let mut push = |c: char, out: &mut String| {
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
        } else {
            out.push(c);
            last_space = false;
        }
    };
    if line.is_ascii() {
        for b in line.bytes() {
            if let Some(c) = plain_char(b.to_ascii_lowercase() as char) {
                push(c, out);
            }
        }
    } else {
        let nfkc: String = line.nfkc().collect();
        for c in caseless::default_case_fold_str(&nfkc).chars() {
            if let Some(c) = plain_char(c) {
                push(c, out);
            }
        }
    }
    while out.len() > from && out.ends_with(' ') {
        out.pop();
    }
}

/// Typographic variants become their plain form; invisible characters vanish.
fn plain_char(c: char) -> Option<char> {
    match c {
        '\u{2018}' | '\u{2019}' | '\u{02bc}' | '\u{2032}' | '`' => Some('\''),
        '\u{201c}' | '\u{201d}' | '\u{201e}' => Some('"'),
        '\u{2010}'..='\u{2015}' => Some('-'),
        '\u{200b}'..='\u{200d}' | '\u{feff}' | '\u{00ad}' => None,
        _ => Some(c),
    }
}

/// Folds the non-ASCII letters of a policy pattern the way message text is folded (ß → ss,
/// "—" → "-", full-width forms → ASCII), so that a pattern written with them can match.
/// ASCII is left alone: it is regex syntax, and upper-case ASCII is reported instead.
pub fn fold_pattern(pattern: &str) -> String {
    if pattern.is_ascii() {
        return pattern.to_string();
    }
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        let one: String = std::iter::once(c).nfkc().collect();
        for f in caseless::default_case_fold_str(&one).chars() {
            if let Some(f) = plain_char(f) {
                out.push(f);
            }
        }
    }
    out
}

/// Case-folds a whole text the way messages are (for patterns written by people, tests).
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_into(s, &mut out);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text(Source),
    Structure,
    Blank,
}

/// Longest signature we accept: a "Thanks," followed by more than this is a message, not a sign-off.
const MAX_SIGNATURE_LINES: usize = 12;

/// Splits and normalizes a message's text (subject first, then the body).
pub fn normalize(raw: &str, rules: &TextRules) -> Normalized {
    let cleaned = strip_markup(raw);
    let raw_lines: Vec<&str> = cleaned.lines().collect();
    // Fold each line once: structure rules match the folded line.
    // All folded lines in one buffer, each a stretch of it (one allocation, not one a line).
    let mut buffer = String::with_capacity(cleaned.len() + raw_lines.len());
    let mut bounds = Vec::with_capacity(raw_lines.len());
    for l in &raw_lines {
        let start = buffer.len();
        // Keep leading indentation visible to log rules (code blocks, pasted output).
        let body = l.trim_start();
        let width: usize = l[..l.len() - body.len()]
            .chars()
            .map(|c| if c == '\t' { 4 } else { 1 })
            .sum();
        for _ in 0..width.min(8) {
            buffer.push(' ');
        }
        fold_into(body, &mut buffer);
        // A line of nothing but indentation folds to nothing.
        while buffer.len() > start && buffer.ends_with(' ') {
            buffer.pop();
        }
        bounds.push(start..buffer.len());
    }
    let folded: Vec<&str> = bounds.into_iter().map(|r| &buffer[r]).collect();

    // Every line against every [text] rule, once: the look-aheads of `classify_lines` and the
    // form answers below reuse it.
    let matched: Vec<LineMatch> = folded.iter().map(|l| rules.classify(l)).collect();
    let kinds = classify_lines(&raw_lines, &folded, &matched);

    let mut out = Normalized {
        text: String::with_capacity(cleaned.len()),
        segments: Vec::new(),
    };
    let mut prev: Option<Kind> = None;
    // The last form label seen ("**Is there a workaround?**", "Environment:" as a heading),
    // until the sender's own answer under it has been read.
    let mut form_label: Option<String> = None;
    for ((line, kind), is) in folded.iter().zip(kinds).zip(&matched) {
        let mut content = line.trim();
        if let Kind::Text(Source::Quoted) = kind {
            content = content.trim_start_matches(['>', ' ']);
        }
        // Boxes ("- [x] No", "Workaround: [ ] Yes [x] No"): a ticked choice is the sender's
        // answer; the unticked ones are not their words and are left out (a line of nothing
        // but unticked choices is then empty, like a blank line).
        let choices;
        let mut checked = false;
        if BOX.is_match(content) {
            (choices, checked) = keep_ticked_choices(content);
            content = &choices;
        }
        let content = content
            .trim_start_matches(['#', '*', '-', '•'])
            .trim()
            .trim_end_matches("**");
        if kind == Kind::Blank || content.is_empty() {
            prev = Some(Kind::Blank);
            continue;
        }
        if kind == Kind::Structure {
            form_label = as_form_label(content).map(str::to_string);
        }
        // An answer under a form label is read with its label: "[x] No" under "Is there a
        // workaround?" reads as the field "is there a workaround: no". The label alone stays
        // structure, so a heading still never makes a fact on its own (decision 122).
        let owned;
        let content = match (kind, form_label.as_deref()) {
            (Kind::Text(Source::Own), Some(label)) if checked || is.answer => {
                // As a field, "label: answer": a form's question mark is not the sender's.
                owned = format!("{}: {content}", label.trim_end_matches(['?', ':', ' ']));
                if !checked {
                    form_label = None;
                }
                owned.as_str()
            }
            (Kind::Text(_), _) => {
                form_label = None;
                content
            }
            _ => content,
        };
        let source = match kind {
            Kind::Text(s) => Some(s),
            _ => None,
        };
        // Wrapped lines of one prose paragraph join with a space so phrases match across the
        // wrap; anything else starts a new line.
        let join_space =
            prev == Some(kind) && matches!(kind, Kind::Text(Source::Own | Source::Quoted));
        if !out.text.is_empty() {
            out.text.push(if join_space { ' ' } else { '\n' });
        }
        let start = out.text.len();
        out.text.push_str(content);
        let end = out.text.len();
        match out.segments.last_mut() {
            Some(last) if join_space && last.source == source => last.end = end,
            _ => out.segments.push(Segment { start, end, source }),
        }
        prev = Some(kind);
    }
    out
}

/// A template line that asks for an answer: a short label ending in "?" or ":" once its
/// markdown marks are gone.
fn as_form_label(content: &str) -> Option<&str> {
    let label = content
        .trim_start_matches(['#', '*', '_', ' '])
        .trim_end_matches(['*', '_', ' ']);
    let short = label.chars().count() <= 80;
    (short && (label.ends_with('?') || label.ends_with(':'))).then_some(label)
}

/// A line with boxes in it, keeping the text before the first box and each ticked choice
/// ("Type: [x] Incident [ ] Question" is "Type: Incident"), white space collapsed; and
/// whether any box was ticked.
fn keep_ticked_choices(line: &str) -> (String, bool) {
    let mut out = String::with_capacity(line.len());
    let mut rest_start = 0;
    let mut keep = true;
    let mut ticked = false;
    for m in BOX.captures_iter(line) {
        let whole = m.get(0).expect("group 0");
        if keep {
            out.push_str(&line[rest_start..whole.start()]);
        }
        keep = m.get(1).is_some_and(|b| b.as_str() != " ");
        ticked |= keep;
        rest_start = whole.end();
    }
    if keep {
        out.push_str(&line[rest_start..]);
    }
    (out.split_whitespace().collect::<Vec<_>>().join(" "), ticked)
}

fn classify_lines(raw: &[&str], folded: &[&str], matched: &[LineMatch]) -> Vec<Kind> {
    #[derive(PartialEq)]
    enum State {
        Own,
        Quoted,
        ForwardHeader,
        Signature,
        /// The message's own header block pasted on top (`From:`, `Sent:`, `Subject:`):
        /// structure, and the text after it is the sender's.
        LeadHeader,
    }
    let mut kinds = Vec::with_capacity(folded.len());
    let mut state = State::Own;
    let mut seen_text = false;
    let mut in_fence = false;
    // After a shell prompt line, the lines up to the next blank one are the command's output.
    let mut console = false;
    for (i, line) in folded.iter().enumerate() {
        let trimmed = line.trim();
        let is = matched[i];
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            kinds.push(Kind::Structure);
            continue;
        }
        if in_fence {
            // A log pasted inside quoted history belongs to that history.
            kinds.push(Kind::Text(if state == State::Quoted {
                Source::Quoted
            } else {
                Source::Log
            }));
            continue;
        }
        if trimmed.is_empty() {
            console = false;
            match state {
                State::ForwardHeader => state = State::Quoted,
                State::LeadHeader => state = State::Own,
                _ => {}
            }
            kinds.push(Kind::Blank);
            continue;
        }
        if i == 0 {
            // A reply's or forward's subject repeats the thread's old one ("Re: hn-07
            // down!!!"): it is quoted text, not the sender's new words.
            let subject = trimmed
                .strip_prefix("subject:")
                .map_or(trimmed, str::trim_start);
            let repeated = REPLY_PREFIX.is_match(subject);
            if repeated || trimmed.starts_with("subject:") {
                kinds.push(Kind::Text(if repeated {
                    Source::Quoted
                } else {
                    Source::Own
                }));
                continue;
            }
        }
        if is.forward {
            state = State::ForwardHeader;
            kinds.push(Kind::Structure);
            continue;
        }
        if is.quote || outlook_header_block(folded, matched, i) {
            state = if seen_text || is.quote {
                State::ForwardHeader
            } else {
                State::LeadHeader
            };
            kinds.push(Kind::Structure);
            continue;
        }
        if matches!(state, State::ForwardHeader | State::LeadHeader) {
            if is.header {
                kinds.push(Kind::Structure);
                continue;
            }
            state = match state {
                State::LeadHeader => State::Own,
                _ => State::Quoted,
            };
        }
        seen_text = true;
        if raw[i].trim_start().starts_with('>') {
            kinds.push(Kind::Text(Source::Quoted));
            continue;
        }
        if is.template {
            kinds.push(Kind::Structure);
            continue;
        }
        if state == State::Own && is.signature && signature_is_short(folded, matched, i) {
            state = State::Signature;
        }
        if matches!(state, State::Own | State::LeadHeader) {
            if is.log && shell_prompt(raw[i]) {
                console = true;
            }
            if is.log || console {
                kinds.push(Kind::Text(Source::Log));
                continue;
            }
        }
        kinds.push(match state {
            State::Own | State::LeadHeader => Kind::Text(Source::Own),
            State::Signature => Kind::Text(Source::Signature),
            State::Quoted | State::ForwardHeader => Kind::Text(Source::Quoted),
        });
    }
    kinds
}

/// A pasted shell command: `# cmd`, `$ cmd`, `[root@node ~]# cmd` or `root@node:~# cmd`, the
/// command in lower case (a markdown heading such as `# Problem` is not a prompt).
fn shell_prompt(raw: &str) -> bool {
    let line = raw.trim_start();
    let after = if let Some(rest) = line.strip_prefix("# ").or_else(|| line.strip_prefix("$ ")) {
        rest
    } else {
        let Some(at) = line.find(['#', '$']) else {
            return false;
        };
        let head = &line[..at];
        // `[root@node ~]` may hold spaces; a bare `user@host:~` may not.
        let bracketed = head.starts_with('[') && head.ends_with(']');
        let user_host = head.contains('@') && !head.contains(' ');
        if !(bracketed || user_host) {
            return false;
        }
        line[at + 1..].trim_start()
    };
    after
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '/' || c == '.')
}

/// Outlook quotes with a header block (`From: …` then `Sent:`/`Date:` lines) and no `>`.
fn outlook_header_block(folded: &[&str], matched: &[LineMatch], i: usize) -> bool {
    let line = folded[i].trim();
    if !(line.starts_with("from:")
        || line.starts_with("von:")
        || line.starts_with("de :")
        || line.starts_with("de:"))
    {
        return false;
    }
    (i + 1..folded.len())
        .find(|&j| !folded[j].trim().is_empty())
        .is_some_and(|next| matched[next].header)
}

/// A sign-off starts a signature only when little follows it before a quote or the end.
fn signature_is_short(folded: &[&str], matched: &[LineMatch], i: usize) -> bool {
    let mut lines = 0;
    for (line, is) in folded.iter().zip(matched).skip(i + 1) {
        let t = line.trim();
        if is.quote || is.forward || t.starts_with('>') {
            break;
        }
        if !t.is_empty() {
            lines += 1;
            if lines > MAX_SIGNATURE_LINES {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_width_and_apostrophes() {
        assert_eq!(fold("The  Server DOESN’T\tboot"), "the server doesn't boot");
        assert_eq!(fold("ＶＰＳ Straße"), "vps strasse");
        assert_eq!(fold("ascii ONLY  "), "ascii only");
    }

    #[test]
    fn decodes_entities_once() {
        let decoded = decode_entities("a &lt;b&gt; &amp;lt; &nbsp;x doesn&rsquo;t");
        assert_eq!(decoded, "a <b> &lt; \u{a0}x doesn\u{2019}t");
        // The no-break space and the typographic apostrophe fold to their plain forms.
        assert_eq!(fold(&decoded), "a <b> &lt; x doesn't");
        assert_eq!(
            decode_entities("R&D &amp c&#39;s &quot;q&quot;"),
            "R&D &amp c's \"q\""
        );
        assert_eq!(decode_entities("ends with &"), "ends with &");
    }

    #[test]
    fn tells_shell_prompts_from_headings() {
        assert!(shell_prompt("# vzctl start 412"));
        assert!(shell_prompt("$ prlctl list -a"));
        assert!(shell_prompt("[root@hn07 ~]# vzctl start 101"));
        assert!(shell_prompt("root@hn07:~# ploop check /vz/private/101"));
        assert!(!shell_prompt("# Problem description"));
        assert!(!shell_prompt("Issue #12 is back"));
        assert!(!shell_prompt("costs $ 20"));
    }

    #[test]
    fn strips_html_and_markdown_images() {
        let s = strip_markup(
            "<p>Server&nbsp;<b>down</b></p><br>![shot](http://x/y.png) see [docs](https://d)",
        );
        // Tags become spaces; folding collapses the runs later.
        assert!(fold(&s).contains("server down"), "{s}");
        assert!(!s.contains("shot") && !s.contains("http"), "{s}");
        assert!(s.contains("see docs"), "{s}");
    }
}
