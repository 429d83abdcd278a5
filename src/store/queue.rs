//! Reading the queue: filtered pages of tickets, one ticket with its whole history, the
//! counts behind `/metrics`, and the agreement report.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};

use super::{Result, Store, TicketRow};

/// Which tickets, and which page of them.
#[derive(Debug, Clone)]
pub struct TicketFilter {
    pub severity: Option<u8>,
    /// A label the ticket carries ("needs:phone", "env:production").
    pub label: Option<String>,
    pub status: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

impl Default for TicketFilter {
    fn default() -> TicketFilter {
        TicketFilter {
            severity: None,
            label: None,
            status: None,
            limit: usize::MAX >> 1,
            offset: 0,
        }
    }
}

const TICKET_COLUMNS: &str = "t.id, t.channel, t.subject, t.customer,
    COALESCE(t.override_severity, t.severity), t.severity, t.rule, t.override_severity,
    t.status, t.labels, t.questions,
    (SELECT COUNT(*) FROM messages m WHERE m.ticket_id = t.id),
    t.created_at, t.updated_at, t.language";

const TICKET_WHERE: &str = "(?1 IS NULL OR COALESCE(t.override_severity, t.severity) = ?1)
    AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(t.labels) WHERE value = ?2))
    AND (?3 IS NULL OR t.status = ?3)";

fn ticket_row(r: &Row) -> rusqlite::Result<TicketRow> {
    let json = |s: String| serde_json::from_str(&s).unwrap_or(Value::Null);
    Ok(TicketRow {
        id: r.get(0)?,
        channel: r.get(1)?,
        subject: r.get(2)?,
        customer: r.get(3)?,
        severity: r.get(4)?,
        proposed_severity: r.get(5)?,
        rule: r.get(6)?,
        override_severity: r.get(7)?,
        status: r.get(8)?,
        labels: json(r.get(9)?),
        questions: json(r.get(10)?),
        messages: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        language: r.get(14)?,
    })
}

impl Store {
    /// A page of the queue (most severe first, then oldest) and the number of tickets that
    /// match the filter in all.
    pub fn tickets_page(&self, f: &TicketFilter) -> Result<(Vec<TicketRow>, i64)> {
        self.read(|c| {
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM tickets t WHERE {TICKET_WHERE}"),
                params![f.severity, f.label, f.status],
                |r| r.get(0),
            )?;
            let mut st = c.prepare(&format!(
                "SELECT {TICKET_COLUMNS} FROM tickets t WHERE {TICKET_WHERE}
                 ORDER BY COALESCE(t.override_severity, t.severity), t.created_at, t.id
                 LIMIT ?4 OFFSET ?5"
            ))?;
            let rows = st
                .query_map(
                    params![
                        f.severity,
                        f.label,
                        f.status,
                        f.limit as i64,
                        f.offset as i64
                    ],
                    ticket_row,
                )?
                .collect::<rusqlite::Result<_>>()?;
            Ok((rows, total))
        })
    }

    /// One ticket with everything about it: facts and evidence, messages, decisions,
    /// overrides. None when there is no such ticket.
    pub fn ticket_detail(&self, id: i64) -> Result<Option<Value>> {
        self.read(|c| {
            let Some(ticket) = c
                .query_row(
                    &format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = ?1"),
                    params![id],
                    ticket_row,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let facts: String = c.query_row(
                "SELECT facts FROM tickets WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            let facts: Value = serde_json::from_str(&facts).unwrap_or(Value::Null);
            let messages = rows_json(
                c,
                "SELECT id, channel, message_id, sender, subject, text, automatic, received_at
                 FROM messages WHERE ticket_id = ?1 ORDER BY id",
                id,
                |r| {
                    Ok(json!({
                        "id": r.get::<_, i64>(0)?,
                        "channel": r.get::<_, String>(1)?,
                        "message_id": r.get::<_, Option<String>>(2)?,
                        "sender": r.get::<_, Option<String>>(3)?,
                        "subject": r.get::<_, Option<String>>(4)?,
                        "text": r.get::<_, String>(5)?,
                        "automatic": r.get::<_, Option<String>>(6)?,
                        "received_at": r.get::<_, i64>(7)?,
                    }))
                },
            )?;
            let decisions = rows_json(
                c,
                "SELECT id, message_id, severity, previous_severity, rule, rationale, reason, reply,
                        decision, created_at
                 FROM decisions WHERE ticket_id = ?1 ORDER BY id",
                id,
                |r| {
                    let decision: String = r.get(8)?;
                    let decision: Value = serde_json::from_str(&decision).unwrap_or(Value::Null);
                    Ok(json!({
                        "id": r.get::<_, i64>(0)?,
                        "message": r.get::<_, Option<i64>>(1)?,
                        "severity": r.get::<_, u8>(2)?,
                        "previous_severity": r.get::<_, Option<u8>>(3)?,
                        "rule": r.get::<_, String>(4)?,
                        "rationale": r.get::<_, String>(5)?,
                        "reason": r.get::<_, String>(6)?,
                        "reply": r.get::<_, String>(7)?,
                        "questions": decision.get("questions").cloned().unwrap_or(json!([])),
                        "created_at": r.get::<_, i64>(9)?,
                    }))
                },
            )?;
            let overrides = rows_json(
                c,
                "SELECT from_severity, to_severity, proposed_severity, reason, agent, channel,
                        created_at
                 FROM overrides WHERE ticket_id = ?1 ORDER BY id",
                id,
                |r| {
                    Ok(json!({
                        "from": r.get::<_, u8>(0)?,
                        "to": r.get::<_, u8>(1)?,
                        "proposed": r.get::<_, u8>(2)?,
                        "reason": r.get::<_, String>(3)?,
                        "agent": r.get::<_, String>(4)?,
                        "channel": r.get::<_, String>(5)?,
                        "created_at": r.get::<_, i64>(6)?,
                    }))
                },
            )?;
            let mut v = serde_json::to_value(&ticket).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut v {
                map.insert("attributes".into(), facts["attributes"].clone());
                map.insert("evidence".into(), facts["evidence"].clone());
                map.insert("messages".into(), messages);
                map.insert("decisions".into(), decisions);
                map.insert("overrides".into(), overrides);
            }
            Ok(Some(v))
        })
    }

    /// The ticket a channel's thread key belongs to.
    pub fn ticket_by_thread_key(&self, channel: &str, key: &str) -> Result<Option<i64>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT id FROM tickets WHERE channel = ?1 AND thread_key = ?2",
                params![channel, key],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// A number that changes whenever the queue changes (a decision or an override was
    /// recorded): what the queue page polls to know when to refresh.
    pub fn queue_version(&self) -> Result<i64> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM decisions) * 1000003
                      + (SELECT COALESCE(MAX(id), 0) FROM overrides)",
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// Rows of `(labels..., count)` for a grouped count, for `/metrics`.
    pub fn counts(&self, sql: &str) -> Result<Vec<(Vec<String>, i64)>> {
        self.read(|c| {
            let mut st = c.prepare(sql)?;
            let n = st.column_count();
            let rows = st.query_map([], |r| {
                let mut labels = Vec::new();
                for i in 0..n - 1 {
                    let v: rusqlite::types::Value = r.get(i)?;
                    labels.push(match v {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        rusqlite::types::Value::Null => String::new(),
                        other => format!("{other:?}"),
                    });
                }
                Ok((labels, r.get(n - 1)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

fn rows_json(
    c: &Connection,
    sql: &str,
    id: i64,
    f: impl FnMut(&Row) -> rusqlite::Result<Value>,
) -> Result<Value> {
    let mut st = c.prepare(sql)?;
    let rows = st
        .query_map(params![id], f)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Value::Array(rows))
}

/// The agreement report: for tickets created since `since` (Unix seconds), per level
/// firstline proposed, how many tickets, how many an agent overrode, and the final level of
/// each. `(proposed, final, count)` rows.
pub fn report_rows(store: &Store, since: i64) -> Result<Vec<(u8, u8, i64)>> {
    store.read(|c| {
        let mut st = c.prepare(
            "SELECT t.severity, COALESCE(t.override_severity, t.severity), COUNT(*)
             FROM tickets t WHERE t.created_at >= ?1 AND t.severity > 0
             GROUP BY 1, 2 ORDER BY 1, 2",
        )?;
        let rows = st.query_map(params![since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}
