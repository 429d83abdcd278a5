//! The email channel: raw messages in (Maildir spool, IMAP, `ingest`), replies out (SMTP or
//! `.eml` files), loop protection and mailbox labels.

pub mod imap;
pub mod loops;
pub mod maildir;
pub mod parse;
pub mod reply;
pub mod send;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::intake::{Inbound, Intake, NewOutbox, Receipt, Received};
use crate::store::{self, StoreError};
use reply::ReplyWriter;

/// The channel's name in the store.
pub const CHANNEL: &str = "email";

/// Which IMAP message a label job is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxMessage {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// A label job: keywords to add to the original and a folder to move it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelJob {
    pub message: MailboxMessage,
    pub keywords: Vec<String>,
    pub folder: Option<String>,
}

/// How a raw message was handled.
#[derive(Debug)]
pub enum Handled {
    Triaged(Box<Receipt>),
    Duplicate,
    Quarantined(String),
}

/// Where labels go: keywords on/off, a folder per severity, the quarantine keyword/folder.
#[derive(Debug, Clone, Default)]
pub struct Labeling {
    pub keywords: bool,
    pub severity_folders: BTreeMap<String, String>,
    pub quarantine_keyword: String,
    pub quarantine_folder: Option<String>,
}

/// Email in and out, around the shared intake.
pub struct EmailChannel {
    pub intake: Arc<Intake>,
    pub writer: ReplyWriter,
    pub max_bytes: u64,
    pub labeling: Labeling,
}

impl EmailChannel {
    /// Handles one raw message: size limit, parse, loop checks, threading, triage, and the
    /// reply and labels queued — or the quarantine, with its reason. `source` identifies the
    /// message within the channel; `cursor` moves in the same transaction; `at` is the IMAP
    /// message to label, when it came from IMAP.
    pub fn receive(
        &self,
        raw: &[u8],
        source: &str,
        cursor: Option<(String, String)>,
        at: Option<&MailboxMessage>,
    ) -> Result<Handled, StoreError> {
        if raw.len() as u64 > self.max_bytes {
            return self.too_large(source, raw.len() as u64, cursor, at);
        }
        let parsed = match parse::parse_email(raw) {
            Ok(p) => p,
            Err(e) => return self.quarantine(source, &e.to_string(), Some(raw), cursor, at),
        };
        let own = parsed
            .message_id
            .as_deref()
            .is_some_and(|id| self.writer.is_own_message_id(id))
            || parsed
                .from
                .as_deref()
                .is_some_and(|f| f.eq_ignore_ascii_case(self.writer.address()));
        if own && let Some(id) = &parsed.message_id {
            // A copy of one of our replies: proof that it was sent.
            if self.intake.store.confirm_sent(CHANNEL, id)? {
                tracing::info!(message_id = %id, "a reply's copy arrived; marked sent");
            }
        }
        let automatic = if own {
            Some("firstline's own message".to_string())
        } else {
            parsed.automatic.clone()
        };
        let mut references = parsed.references.clone();
        for id in &parsed.in_reply_to {
            if !references.contains(id) {
                references.push(id.clone());
            }
        }
        let inbound = Inbound {
            channel: CHANNEL.to_string(),
            source: source.to_string(),
            message_id: parsed.message_id.clone(),
            sender: parsed.reply_to.clone(),
            subject: parsed.subject.clone(),
            text: parsed.triage_text(),
            raw: Some(raw.to_vec()),
            automatic,
            ticket_hint: parsed
                .subject
                .as_deref()
                .and_then(|s| self.writer.ticket_in_subject(s)),
            references,
            cursor,
            thread_key: None,
        };
        let policy = self.intake.policy.clone();
        let mut render_error = None;
        let received = self.intake.receive(&inbound, |ctx| {
            let mut out = Vec::new();
            if ctx.reply.is_ok()
                && let Some(to) = &inbound.sender
            {
                match self.writer.reply(
                    ctx,
                    to,
                    parsed.from_name.as_deref(),
                    &parsed.references,
                    &policy,
                ) {
                    Ok((id, bytes)) => out.push(NewOutbox {
                        kind: "reply",
                        recipient: Some(to.clone()),
                        rfc_message_id: Some(id),
                        payload: bytes,
                    }),
                    Err(e) => render_error = Some(e.to_string()),
                }
            }
            if let Some(at) = at {
                let folder = self
                    .labeling
                    .severity_folders
                    .get(&ctx.severity.to_string())
                    .cloned();
                let keywords = if self.labeling.keywords {
                    reply::keywords(&ctx.decision.labels)
                } else {
                    Vec::new()
                };
                if !keywords.is_empty() || folder.is_some() {
                    out.push(label_outbox(at, keywords, folder));
                }
            }
            out
        })?;
        if let Some(e) = render_error {
            tracing::error!(source, error = %e, "the reply could not be written; the ticket is recorded without it");
        }
        Ok(match received {
            Received::Duplicate { .. } => Handled::Duplicate,
            Received::Triaged(r) => Handled::Triaged(r),
        })
    }

    /// Quarantines a message over the size limit without reading it.
    pub fn too_large(
        &self,
        source: &str,
        size: u64,
        cursor: Option<(String, String)>,
        at: Option<&MailboxMessage>,
    ) -> Result<Handled, StoreError> {
        let reason = format!(
            "message of {size} bytes is over the limit of {} bytes (email.max_message_bytes)",
            self.max_bytes
        );
        self.quarantine(source, &reason, None, cursor, at)
    }

    /// Records a message that cannot be processed, labels it in the mailbox when it came
    /// from IMAP, and moves the cursor past it: the rest of the mailbox flows on.
    fn quarantine(
        &self,
        source: &str,
        reason: &str,
        raw: Option<&[u8]>,
        cursor: Option<(String, String)>,
        at: Option<&MailboxMessage>,
    ) -> Result<Handled, StoreError> {
        tracing::warn!(source, reason, "message quarantined");
        self.intake.store.write(|tx| {
            store::insert_quarantine(tx, CHANNEL, source, reason, raw)?;
            if let Some(at) = at {
                let mut keywords = Vec::new();
                if !self.labeling.quarantine_keyword.is_empty() {
                    keywords.push(self.labeling.quarantine_keyword.clone());
                }
                let job = label_outbox(at, keywords, self.labeling.quarantine_folder.clone());
                store::insert_outbox(tx, None, CHANNEL, "label", None, None, &job.payload)?;
            }
            if let Some((key, value)) = &cursor {
                store::set_cursor(tx, CHANNEL, key, value)?;
            }
            Ok(())
        })?;
        Ok(Handled::Quarantined(reason.to_string()))
    }
}

fn label_outbox(at: &MailboxMessage, keywords: Vec<String>, folder: Option<String>) -> NewOutbox {
    let job = LabelJob {
        message: at.clone(),
        keywords,
        folder,
    };
    NewOutbox {
        kind: "label",
        recipient: None,
        rfc_message_id: None,
        payload: serde_json::to_vec(&job).unwrap_or_default(),
    }
}
