//! Outbound mail: the reply to a customer (threaded, rendered from a template, marked as
//! automatic so other robots do not answer it) and the mailbox labels of a decision.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use minijinja::Environment;
use regex::Regex;
use serde_json::json;

use crate::intake::Context;

/// Templates compiled into the binary: used when no template folder is configured, and for
/// any template missing from it.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "reply.txt",
        include_str!("../../../config/templates/reply.txt"),
    ),
    (
        "reply.de.txt",
        include_str!("../../../config/templates/reply.de.txt"),
    ),
    (
        "reply.fr.txt",
        include_str!("../../../config/templates/reply.fr.txt"),
    ),
    (
        "reply.es.txt",
        include_str!("../../../config/templates/reply.es.txt"),
    ),
    (
        "reply.ru.txt",
        include_str!("../../../config/templates/reply.ru.txt"),
    ),
    (
        "reply.zh.txt",
        include_str!("../../../config/templates/reply.zh.txt"),
    ),
];

/// Languages a folder of templates may hold a `reply.LANG.txt` / `reply.LANG.html` for.
const LANGUAGES: &[&str] = &["de", "fr", "es", "ru", "zh", "it", "pt", "nl", "pl"];

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
    #[error("cannot read template folder {0}: {1}")]
    Folder(String, std::io::Error),
    #[error("address {0:?}: {1}")]
    Address(String, String),
    #[error("cannot build the reply: {0}")]
    Build(String),
}

/// What replies are written with: the sender, the Message-ID domain, the ticket token
/// format, the templates.
pub struct ReplyWriter {
    from: Mailbox,
    domain: String,
    prefix: String,
    token: Regex,
    templates: Environment<'static>,
    has_html: bool,
}

/// Makes Message-IDs unique within a process even when two are made in the same nanosecond.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl ReplyWriter {
    /// `templates`: a folder with `reply.txt` (and optionally `reply.html`), or None for the
    /// embedded templates. Template errors are found here, at start, not at the first reply.
    pub fn new(
        address: &str,
        display_name: &str,
        domain: &str,
        prefix: &str,
        templates: Option<&Path>,
    ) -> Result<ReplyWriter, ReplyError> {
        let from = Mailbox::new(
            Some(display_name.to_string()),
            address
                .parse()
                .map_err(|e: lettre::address::AddressError| {
                    ReplyError::Address(address.to_string(), e.to_string())
                })?,
        );
        let mut env = Environment::new();
        let mut load = |name: &str, src: String| {
            env.add_template_owned(name.to_string(), src)
                .map_err(|source| ReplyError::Template {
                    name: name.to_string(),
                    source,
                })
        };
        let mut has_html = false;
        let mut texts: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        if let Some(dir) = templates {
            let read = |file: &str| -> Result<Option<String>, ReplyError> {
                match std::fs::read_to_string(dir.join(file)) {
                    Ok(s) => Ok(Some(s)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(ReplyError::Folder(dir.display().to_string(), e)),
                }
            };
            let names =
                std::iter::once(String::new()).chain(LANGUAGES.iter().map(|l| format!(".{l}")));
            for lang in names {
                if let Some(t) = read(&format!("reply{lang}.txt"))? {
                    texts.retain(|(n, _)| *n != format!("reply{lang}.txt"));
                    texts.push((format!("reply{lang}.txt"), t));
                }
                if let Some(h) = read(&format!("reply{lang}.html"))? {
                    load(&format!("reply{lang}.html"), h)?;
                    has_html = true;
                }
            }
        }
        for (name, text) in texts {
            load(&name, text)?;
        }
        let token = Regex::new(&format!(r"\[{}-(\d+)\]", regex::escape(prefix)))
            .map_err(|e| ReplyError::Build(e.to_string()))?;
        Ok(ReplyWriter {
            from,
            domain: domain.to_string(),
            prefix: prefix.to_string(),
            token,
            templates: env,
            has_html,
        })
    }

    pub fn address(&self) -> &str {
        self.from.email.as_ref()
    }

    /// The ticket named by a subject's token (`[FL-12]`), if any.
    pub fn ticket_in_subject(&self, subject: &str) -> Option<i64> {
        self.token
            .captures_iter(subject)
            .filter_map(|c| c[1].parse().ok())
            .last()
    }

    /// Whether a Message-ID is one of ours (a reply of firstline's coming back).
    pub fn is_own_message_id(&self, id: &str) -> bool {
        id.rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&self.domain))
    }

    fn new_message_id(&self, ticket: i64) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        format!(
            "fl.{ticket}.{nanos:x}.{}.{seq}@{}",
            std::process::id(),
            self.domain
        )
    }

    /// The reply to the message in `ctx`: (Message-ID without brackets, recipient, bytes).
    pub fn reply(
        &self,
        ctx: &Context,
        recipient: &str,
        name: Option<&str>,
        references: &[String],
        policy: &crate::triage::Policy,
    ) -> Result<(String, Vec<u8>), ReplyError> {
        let token = format!("[{}-{}]", self.prefix, ctx.ticket_id);
        let vars = json!({
            "name": name,
            "token": token,
            "ticket": ctx.ticket_id,
            "severity": ctx.severity,
            "severity_name": policy.level_name(ctx.severity),
            "rationale": ctx.decision.rationale,
            "questions": ctx.decision.questions.iter().map(|q| q.text.as_str()).collect::<Vec<_>>(),
            "changed": !ctx.new_ticket && ctx.previous.is_some_and(|p| p != ctx.severity),
            "previous": ctx.previous,
            "previous_name": ctx.previous.map(|p| policy.level_name(p)),
            "display_name": self.from.name,
        });
        let render = |name: &str| {
            self.templates
                .get_template(name)
                .and_then(|t| t.render(minijinja::value::Serde(&vars)))
                .map_err(|source| ReplyError::Template {
                    name: name.to_string(),
                    source,
                })
        };
        // The customer's language when there is a template for it, else the default one.
        let pick = |kind: &str| {
            let own = format!("reply.{}.{kind}", ctx.decision.language);
            if self.templates.get_template(&own).is_ok() {
                own
            } else {
                format!("reply.{kind}")
            }
        };
        let text = render(&pick("txt"))?;
        let to: Mailbox = recipient
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                ReplyError::Address(recipient.to_string(), e.to_string())
            })?;
        let base = ctx
            .inbound
            .subject
            .as_deref()
            .or(ctx.subject)
            .unwrap_or("your request");
        let subject = reply_subject(base, &token);
        let id = self.new_message_id(ctx.ticket_id);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{id}>")));
        if let Some(orig) = &ctx.inbound.message_id {
            builder = builder.in_reply_to(format!("<{orig}>"));
            let mut chain: Vec<String> = references.iter().map(|r| format!("<{r}>")).collect();
            chain.push(format!("<{orig}>"));
            builder = builder.references(chain.join(" "));
        }
        for (name, value) in [
            // RFC 3834: an automatic answer; well-behaved robots do not answer it.
            ("Auto-Submitted", "auto-replied".to_string()),
            // Asks Exchange not to send out-of-office and similar answers back.
            ("X-Auto-Response-Suppress", "All".to_string()),
            ("X-Loop", self.address().to_string()),
        ] {
            let header = HeaderName::new_from_ascii(name.to_string())
                .map_err(|e| ReplyError::Build(e.to_string()))?;
            builder = builder.raw_header(HeaderValue::new(header, value));
        }
        let message = if self.has_html {
            let html = render(&pick("html"))?;
            builder.multipart(MultiPart::alternative_plain_html(text, html))
        } else {
            builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            )
        }
        .map_err(|e| ReplyError::Build(e.to_string()))?;
        Ok((id, message.formatted()))
    }
}

/// `"Re: <subject> [FL-12]"`: one "Re:", the token once.
pub fn reply_subject(subject: &str, token: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        if let Some(rest) = ["re:", "aw:", "sv:", "fwd:", "fw:", "wg:"]
            .iter()
            .find_map(|p| lower.starts_with(p).then(|| &s[p.len()..]))
        {
            s = rest.trim_start();
        } else {
            break;
        }
    }
    let s = s.replace(token, "");
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        format!("Re: {token}")
    } else {
        format!("Re: {s} {token}")
    }
}

/// IMAP keywords for a decision's labels: "severity:1" → `$Severity1`, "needs:phone" →
/// `$NeedsPhone`, "attr:server_down" → `$ServerDown`.
pub fn keywords(labels: &[String]) -> Vec<String> {
    labels
        .iter()
        .map(|label| {
            let label = label.strip_prefix("attr:").unwrap_or(label);
            let mut k = String::from("$");
            for part in label.split([':', '_', '-', ' ']) {
                let mut chars = part.chars();
                if let Some(first) = chars.next() {
                    k.extend(first.to_uppercase());
                    k.extend(chars.filter(|c| c.is_ascii_alphanumeric()));
                }
            }
            k
        })
        .filter(|k| k.len() > 1 && k.is_ascii())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_get_one_re_and_one_token() {
        assert_eq!(
            reply_subject("Server down", "[FL-3]"),
            "Re: Server down [FL-3]"
        );
        assert_eq!(
            reply_subject("RE: Re: Server down [FL-3]", "[FL-3]"),
            "Re: Server down [FL-3]"
        );
        assert_eq!(reply_subject("", "[FL-3]"), "Re: [FL-3]");
    }

    #[test]
    fn labels_become_imap_keywords() {
        let labels = [
            "severity:1",
            "needs:phone",
            "attr:server_down",
            "env:production",
        ]
        .map(String::from);
        assert_eq!(
            keywords(&labels),
            ["$Severity1", "$NeedsPhone", "$ServerDown", "$EnvProduction"]
        );
    }

    #[test]
    fn tokens_and_own_ids_are_recognised() {
        let w = ReplyWriter::new("support@x.test", "Support", "fl.x.test", "FL", None).unwrap();
        assert_eq!(w.ticket_in_subject("Re: down [FL-12]"), Some(12));
        assert_eq!(w.ticket_in_subject("Re: down [XY-12]"), None);
        assert!(w.is_own_message_id("fl.1.2.3.4@fl.x.test"));
        assert!(!w.is_own_message_id("abc@customer.test"));
    }
}
