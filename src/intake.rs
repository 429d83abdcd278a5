//! Intake: a message from any channel → its ticket (new or threaded), the thread's facts
//! merged and re-triaged, the decision recorded, and the channel's replies and labels queued
//! in the outbox — all in one transaction, so a crash never half-processes a message.

use std::sync::Arc;

use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::json;

use crate::metrics::Latency;
use crate::store::{self, Store, StoreError, now};
use crate::triage::{self, Decision, Facts, Policy};

/// A message as a channel hands it over.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// The channel's name ("email", "discord", ...).
    pub channel: String,
    /// Where the message came from, unique within the channel; a second message from the
    /// same source is a duplicate and is not processed again.
    pub source: String,
    /// The channel's own message id (an email's Message-ID); also unique within the channel.
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub subject: Option<String>,
    /// The text triage reads.
    pub text: String,
    /// The message as it arrived, kept for agents and for re-processing.
    pub raw: Option<Vec<u8>>,
    /// Why a machine sent it: recorded and triaged, never answered.
    pub automatic: Option<String>,
    /// A ticket the message names (the token in an email subject).
    pub ticket_hint: Option<i64>,
    /// The channel's own key for the conversation (a helpdesk's ticket id, a chat thread):
    /// messages with the same key are one ticket.
    pub thread_key: Option<String>,
    /// Channel message ids this message answers (In-Reply-To, References), newest last.
    pub references: Vec<String>,
    /// The channel's cursor, advanced in the same transaction: (key, value).
    pub cursor: Option<(String, String)>,
}

/// What a channel needs to decide its replies and labels.
pub struct Context<'a> {
    pub ticket_id: i64,
    pub new_ticket: bool,
    /// The ticket's severity before this message (None for a new ticket).
    pub previous: Option<u8>,
    /// The ticket's severity now (an agent's override wins over the decision).
    pub severity: u8,
    pub decision: &'a Decision,
    pub inbound: &'a Inbound,
    /// Whether an answer may be sent, or why not (automatic mail, nothing changed, a cap).
    pub reply: Result<(), String>,
    /// The ticket's subject (the first message's).
    pub subject: Option<&'a str>,
}

/// Work for the outbox, produced by a channel from a [`Context`].
#[derive(Debug, Clone)]
pub struct NewOutbox {
    /// "reply" (counted against the reply caps) or "label".
    pub kind: &'static str,
    pub recipient: Option<String>,
    pub rfc_message_id: Option<String>,
    pub payload: Vec<u8>,
}

/// The outcome of receiving one message.
#[derive(Debug, Clone)]
pub enum Received {
    /// Already recorded before (same source or same message id): nothing was done.
    Duplicate {
        ticket_id: Option<i64>,
    },
    Triaged(Box<Receipt>),
}

#[derive(Debug, Clone)]
pub struct Receipt {
    pub ticket_id: i64,
    pub new_ticket: bool,
    pub previous: Option<u8>,
    pub severity: u8,
    pub decision: Decision,
    /// What happened to the answer, in words (`"queued <id>"`, `"not answered: ..."`).
    pub reply: String,
    /// Outbox rows queued for this message.
    pub queued: Vec<i64>,
}

/// Reply caps, per hour.
#[derive(Debug, Clone, Copy)]
pub struct ReplyLimits {
    pub per_thread: u32,
    pub per_sender: u32,
}

pub struct Intake {
    pub policy: Arc<Policy>,
    pub store: Arc<Store>,
    pub limits: ReplyLimits,
    /// Outbox channels that get an event for every decision and every change (the webhook,
    /// the agents' chat room).
    pub events: Vec<&'static str>,
    pub latency: Arc<Latency>,
}

/// The outbox channel of webhook events.
pub const EVENTS: &str = "webhook";
/// The outbox channel of the agents' chat room (ticket cards posted and updated in place).
pub const AGENT_ROOM: &str = "discord-agents";

/// An agent's override, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Override {
    pub ticket_id: i64,
    pub from: u8,
    pub to: u8,
    pub proposed: u8,
    pub reason: String,
    pub agent: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("no ticket {0}")]
    NoTicket(i64),
    #[error("severity {0} is not a level of the policy")]
    BadLevel(u8),
    #[error("a reason is required")]
    NoReason,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Intake {
    /// Records, threads, triages and queues the answers to one message. `outputs` is the
    /// channel's part: given the decision, the replies and labels to queue.
    pub fn receive(
        &self,
        inbound: &Inbound,
        outputs: impl FnOnce(&Context) -> Vec<NewOutbox>,
    ) -> Result<Received, StoreError> {
        let started = std::time::Instant::now();
        let out = self.store.write(|tx| {
            if let Some(ticket_id) = duplicate_of(tx, inbound)? {
                if let Some((key, value)) = &inbound.cursor {
                    store::set_cursor(tx, &inbound.channel, key, value)?;
                }
                return Ok(Received::Duplicate { ticket_id });
            }
            let existing = find_ticket(tx, inbound)?;
            let new_ticket = existing.is_none();
            let ticket_id = match existing {
                Some(id) => id,
                None => create_ticket(tx, inbound)?,
            };
            tx.execute(
                "INSERT INTO messages (ticket_id, channel, source, message_id, sender, subject,
                                       text, raw, automatic, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    ticket_id,
                    inbound.channel,
                    inbound.source,
                    inbound.message_id,
                    inbound.sender,
                    inbound.subject,
                    inbound.text,
                    inbound.raw,
                    inbound.automatic,
                    now()
                ],
            )?;
            let message_row = tx.last_insert_rowid();
            let facts = thread_facts(tx, &self.policy, ticket_id)?;
            let decision = triage::classify(&self.policy, &facts);
            let (previous, override_severity, subject): (Option<u8>, Option<u8>, Option<String>) =
                tx.query_row(
                    "SELECT severity, override_severity, subject FROM tickets WHERE id = ?1",
                    params![ticket_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
            let previous = if new_ticket {
                None
            } else {
                override_severity.or(previous)
            };
            let severity = override_severity.unwrap_or(decision.severity);
            let reply = self.may_reply(tx, inbound, ticket_id, new_ticket, previous, severity)?;
            let ctx = Context {
                ticket_id,
                new_ticket,
                previous,
                severity,
                decision: &decision,
                inbound,
                reply: reply.clone(),
                subject: subject.as_deref(),
            };
            let items = outputs(&ctx);
            let mut queued = Vec::new();
            let mut reply_note = match &reply {
                Ok(()) => "no reply produced".to_string(),
                Err(why) => format!("not answered: {why}"),
            };
            for item in items {
                queued.push(store::insert_outbox(
                    tx,
                    Some(ticket_id),
                    &inbound.channel,
                    item.kind,
                    item.recipient.as_deref(),
                    item.rfc_message_id.as_deref(),
                    &item.payload,
                )?);
                if item.kind == "reply" {
                    reply_note = format!(
                        "queued {} to {}",
                        item.rfc_message_id.as_deref().unwrap_or("a reply"),
                        item.recipient.as_deref().unwrap_or("?")
                    );
                }
            }
            let reason = match (new_ticket, previous) {
                (true, _) => "new ticket".to_string(),
                (false, Some(p)) if p != severity => {
                    format!("a new message in the thread changed severity {p} → {severity}")
                }
                _ => "a new message in the thread; severity unchanged".to_string(),
            };
            tx.execute(
                "INSERT INTO decisions (ticket_id, message_id, severity, previous_severity, rule,
                                        rationale, reason, reply, decision, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    ticket_id,
                    message_row,
                    severity,
                    previous,
                    decision.rule,
                    decision.rationale,
                    reason,
                    reply_note,
                    decision.to_json(None).to_string(),
                    now()
                ],
            )?;
            tx.execute(
                "UPDATE tickets SET severity = ?2, rule = ?3, facts = ?4, labels = ?5,
                                    questions = ?6, updated_at = ?7, language = ?8
                 WHERE id = ?1",
                params![
                    ticket_id,
                    decision.severity,
                    decision.rule,
                    json!({"attributes": decision.attributes, "evidence": decision.evidence})
                        .to_string(),
                    serde_json::to_string(&decision.labels).unwrap_or_default(),
                    serde_json::to_string(&decision.questions).unwrap_or_default(),
                    now(),
                    decision.language
                ],
            )?;
            if let Some((key, value)) = &inbound.cursor {
                store::set_cursor(tx, &inbound.channel, key, value)?;
            }
            if !self.events.is_empty() {
                let event = json!({
                    "event": "decision",
                    "ticket": ticket_id,
                    "channel": inbound.channel,
                    "new_ticket": new_ticket,
                    "severity": severity,
                    "previous_severity": previous,
                    "changed": previous.is_some_and(|p| p != severity),
                    "reason": reason,
                    "decision": decision.to_json(None),
                    "at": now(),
                });
                queue_event(tx, &self.events, ticket_id, &event)?;
            }
            Ok(Received::Triaged(Box::new(Receipt {
                ticket_id,
                new_ticket,
                previous,
                severity,
                decision,
                reply: reply_note,
                queued,
            })))
        });
        if matches!(out, Ok(Received::Triaged(_))) {
            self.latency.observe(started.elapsed());
        }
        out
    }

    /// Records an agent's override: it sets the ticket's severity until another override,
    /// and no automatic re-triage undoes it. Returns what was recorded.
    pub fn override_severity(
        &self,
        ticket_id: i64,
        to: u8,
        reason: &str,
        agent: &str,
        channel: &str,
    ) -> Result<Override, OverrideError> {
        if !self.policy.level_names.contains_key(&to) {
            return Err(OverrideError::BadLevel(to));
        }
        if reason.trim().is_empty() {
            return Err(OverrideError::NoReason);
        }
        let events = &self.events;
        let result = self.store.write(|tx| {
            let row: Option<(u8, Option<u8>, String)> = tx
                .query_row(
                    "SELECT severity, override_severity, rule FROM tickets WHERE id = ?1",
                    params![ticket_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((proposed, current, rule)) = row else {
                return Ok(None);
            };
            let from = current.unwrap_or(proposed);
            tx.execute(
                "INSERT INTO overrides (ticket_id, from_severity, to_severity, proposed_severity,
                                        reason, agent, channel, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![ticket_id, from, to, proposed, reason, agent, channel, now()],
            )?;
            tx.execute(
                "UPDATE tickets SET override_severity = ?2, updated_at = ?3 WHERE id = ?1",
                params![ticket_id, to, now()],
            )?;
            let why = format!("agent override by {agent} ({channel}): {reason}");
            tx.execute(
                "INSERT INTO decisions (ticket_id, message_id, severity, previous_severity, rule,
                                        rationale, reason, reply, decision, created_at)
                 VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6, 'not answered: agent override', '{}', ?7)",
                params![ticket_id, to, from, rule, reason, why, now()],
            )?;
            if !events.is_empty() {
                let event = json!({
                    "event": "override",
                    "ticket": ticket_id,
                    "severity": to,
                    "previous_severity": from,
                    "proposed_severity": proposed,
                    "changed": from != to,
                    "reason": reason,
                    "agent": agent,
                    "channel": channel,
                    "at": now(),
                });
                queue_event(tx, events, ticket_id, &event)?;
            }
            Ok(Some(Override {
                ticket_id,
                from,
                to,
                proposed,
                reason: reason.to_string(),
                agent: agent.to_string(),
            }))
        })?;
        result.ok_or(OverrideError::NoTicket(ticket_id))
    }

    /// Whether this message may be answered: never a machine's; in a thread only when the
    /// severity changed; never beyond the per-thread and per-sender caps of the last hour.
    fn may_reply(
        &self,
        tx: &Transaction,
        inbound: &Inbound,
        ticket_id: i64,
        new_ticket: bool,
        previous: Option<u8>,
        severity: u8,
    ) -> Result<Result<(), String>, StoreError> {
        if let Some(why) = &inbound.automatic {
            return Ok(Err(format!("sent by a machine ({why})")));
        }
        if !new_ticket && previous == Some(severity) {
            return Ok(Err("severity unchanged".into()));
        }
        let Some(sender) = &inbound.sender else {
            return Ok(Err("no address to answer".into()));
        };
        let hour_ago = now() - 3600;
        let per_thread: u32 = tx.query_row(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'reply' AND ticket_id = ?1 AND created_at > ?2",
            params![ticket_id, hour_ago],
            |r| r.get(0),
        )?;
        if per_thread >= self.limits.per_thread {
            return Ok(Err(format!(
                "reply cap reached: {per_thread} replies in this thread in the last hour"
            )));
        }
        let per_sender: u32 = tx.query_row(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'reply' AND recipient = ?1 AND created_at > ?2",
            params![sender, hour_ago],
            |r| r.get(0),
        )?;
        if per_sender >= self.limits.per_sender {
            return Ok(Err(format!(
                "reply cap reached: {per_sender} replies to {sender} in the last hour"
            )));
        }
        Ok(Ok(()))
    }
}

/// Queues an event for every sink in the outbox, in the caller's transaction.
fn queue_event(
    tx: &Transaction,
    sinks: &[&str],
    ticket_id: i64,
    event: &serde_json::Value,
) -> Result<(), StoreError> {
    let payload = event.to_string();
    for sink in sinks {
        store::insert_outbox(
            tx,
            Some(ticket_id),
            sink,
            "event",
            None,
            None,
            payload.as_bytes(),
        )?;
    }
    Ok(())
}

/// The ticket of an already-recorded message with the same source or message id.
fn duplicate_of(tx: &Transaction, inbound: &Inbound) -> Result<Option<Option<i64>>, StoreError> {
    let by_source: Option<i64> = tx
        .query_row(
            "SELECT ticket_id FROM messages WHERE channel = ?1 AND source = ?2",
            params![inbound.channel, inbound.source],
            |r| r.get(0),
        )
        .optional()?;
    if by_source.is_some() {
        return Ok(Some(by_source));
    }
    let quarantined: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM quarantine WHERE channel = ?1 AND source = ?2)",
        params![inbound.channel, inbound.source],
        |r| r.get(0),
    )?;
    if quarantined {
        return Ok(Some(None));
    }
    if let Some(mid) = &inbound.message_id {
        let by_id: Option<i64> = tx
            .query_row(
                "SELECT ticket_id FROM messages WHERE channel = ?1 AND message_id = ?2",
                params![inbound.channel, mid],
                |r| r.get(0),
            )
            .optional()?;
        if by_id.is_some() {
            return Ok(Some(by_id));
        }
    }
    Ok(None)
}

/// The ticket a message belongs to: the one it names, else the one holding a message (or a
/// reply of ours) it answers, newest reference first.
fn find_ticket(tx: &Transaction, inbound: &Inbound) -> Result<Option<i64>, StoreError> {
    if let Some(key) = &inbound.thread_key {
        let found: Option<i64> = tx
            .query_row(
                "SELECT id FROM tickets WHERE channel = ?1 AND thread_key = ?2",
                params![inbound.channel, key],
                |r| r.get(0),
            )
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if let Some(id) = inbound.ticket_hint {
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM tickets WHERE id = ?1 AND channel = ?2)",
            params![id, inbound.channel],
            |r| r.get(0),
        )?;
        if exists {
            return Ok(Some(id));
        }
    }
    for reference in inbound.references.iter().rev() {
        let found: Option<i64> = tx
            .query_row(
                "SELECT ticket_id FROM messages WHERE channel = ?1 AND message_id = ?2
                 UNION ALL
                 SELECT ticket_id FROM outbox WHERE channel = ?1 AND rfc_message_id = ?2
                 LIMIT 1",
                params![inbound.channel, reference],
                |r| r.get(0),
            )
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

fn create_ticket(tx: &Transaction, inbound: &Inbound) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO tickets (channel, subject, customer, severity, rule, facts, labels,
                              questions, created_at, updated_at, thread_key)
         VALUES (?1, ?2, ?3, 0, '', '{}', '[]', '[]', ?4, ?4, ?5)",
        params![
            inbound.channel,
            inbound.subject,
            inbound.sender,
            now(),
            inbound.thread_key
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// The thread's facts: every message extracted and merged in order, a later answer
/// overriding an earlier unknown. Machine-sent messages in a thread (an out-of-office reply)
/// are not the customer's words and do not count, unless the thread has nothing else (a
/// monitoring alert that opened the ticket).
fn thread_facts(tx: &Transaction, policy: &Policy, ticket_id: i64) -> Result<Facts, StoreError> {
    let mut st = tx.prepare(
        "SELECT text, automatic IS NOT NULL FROM messages WHERE ticket_id = ?1 ORDER BY id",
    )?;
    let messages: Vec<(String, bool)> = st
        .query_map(params![ticket_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let any_person = messages.iter().any(|(_, auto)| !auto);
    let mut facts: Option<Facts> = None;
    for (text, automatic) in &messages {
        if *automatic && any_person {
            continue;
        }
        let f = triage::extract(policy, text);
        match facts.as_mut() {
            None => facts = Some(f),
            Some(acc) => acc.merge(&f),
        }
    }
    Ok(facts.unwrap_or_else(|| Facts::empty(policy)))
}
