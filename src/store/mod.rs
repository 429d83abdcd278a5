//! The store: one SQLite file holding what must survive a crash — tickets, messages, facts,
//! decisions, the outbox, channel cursors and the quarantine. Migrations run at open.

mod queue;

pub use queue::{TicketFilter, report_rows};

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store {0}: cannot create its folder: {1}")]
    Folder(String, std::io::Error),
    #[error(
        "store schema version {found} is newer than this firstline knows ({known}); upgrade firstline"
    )]
    TooNew { found: i64, known: i64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    subject TEXT,
    customer TEXT,
    severity INTEGER NOT NULL,
    rule TEXT NOT NULL,
    -- An agent's override: it wins over every later automatic re-triage.
    override_severity INTEGER,
    status TEXT NOT NULL DEFAULT 'open',
    facts TEXT NOT NULL,
    labels TEXT NOT NULL,
    questions TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    channel TEXT NOT NULL,
    -- Where it came from, unique per channel (mailbox + UIDVALIDITY + UID, spool file name...).
    source TEXT NOT NULL,
    message_id TEXT,
    sender TEXT,
    subject TEXT,
    text TEXT NOT NULL,
    raw BLOB,
    -- Why a machine sent it (never answered), or NULL for a person.
    automatic TEXT,
    received_at INTEGER NOT NULL,
    UNIQUE (channel, source)
);
CREATE UNIQUE INDEX messages_message_id ON messages (channel, message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX messages_ticket ON messages (ticket_id);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    message_id INTEGER REFERENCES messages(id),
    severity INTEGER NOT NULL,
    previous_severity INTEGER,
    rule TEXT NOT NULL,
    rationale TEXT NOT NULL,
    -- Why this decision was made: a new ticket, a reply in the thread, an override...
    reason TEXT NOT NULL,
    -- What happened to the answer: queued, suppressed (and why), not needed (and why).
    reply TEXT NOT NULL,
    decision TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX decisions_ticket ON decisions (ticket_id);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER REFERENCES tickets(id),
    channel TEXT NOT NULL,
    -- 'reply' (a message to send) or 'label' (a change to make on the original).
    kind TEXT NOT NULL,
    recipient TEXT,
    -- The Message-ID of a reply: how a send interrupted by a crash is recognised.
    rfc_message_id TEXT UNIQUE,
    payload BLOB NOT NULL,
    -- pending → sending → sent; or failed after the last attempt.
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX outbox_due ON outbox (channel, status, next_attempt_at);
CREATE TABLE cursors (
    channel TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (channel, key)
);
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB,
    created_at INTEGER NOT NULL,
    UNIQUE (channel, source)
);
"#,
    r#"
-- A channel's own thread key (a helpdesk's ticket id, a chat thread id).
ALTER TABLE tickets ADD COLUMN thread_key TEXT;
CREATE UNIQUE INDEX tickets_thread_key ON tickets (channel, thread_key)
    WHERE thread_key IS NOT NULL;
-- Agents' overrides: the ground truth the accuracy report compares with.
CREATE TABLE overrides (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    from_severity INTEGER NOT NULL,
    to_severity INTEGER NOT NULL,
    -- firstline's own proposal at the time of the override.
    proposed_severity INTEGER NOT NULL,
    reason TEXT NOT NULL,
    agent TEXT NOT NULL,
    channel TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX overrides_ticket ON overrides (ticket_id);
"#,
    r#"
-- The language of the customer's latest message (ISO 639-1): replies and questions use it.
ALTER TABLE tickets ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
"#,
];

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A ticket as the queue lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TicketRow {
    pub id: i64,
    pub channel: String,
    pub subject: Option<String>,
    pub customer: Option<String>,
    /// The ticket's severity: an agent's override when there is one, else firstline's.
    pub severity: u8,
    /// firstline's own proposal (the latest automatic decision).
    pub proposed_severity: u8,
    /// The customer's language (ISO 639-1).
    pub language: String,
    pub rule: String,
    pub override_severity: Option<u8>,
    pub status: String,
    pub labels: serde_json::Value,
    pub questions: serde_json::Value,
    pub messages: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A piece of work waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub ticket_id: Option<i64>,
    pub kind: String,
    pub recipient: Option<String>,
    pub rfc_message_id: Option<String>,
    pub payload: Vec<u8>,
    pub status: String,
    pub attempts: u32,
}

/// The SQLite store. One connection behind a mutex: every operation is short, and a single
/// writer keeps the transactions simple.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating when missing) the store at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Folder(path.display().to_string(), e))?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Store::init(conn)
    }

    /// A store that lives in memory (tests, `classify`).
    pub fn in_memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL: readers (`firstline tickets`) never block the bot; NORMAL sync is durable
        // across a process crash, which is what `kill -9` tests.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls
        // back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one write transaction: all of it is stored, or none of it.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` with the connection for reading.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&self.lock())
    }

    pub fn cursor(&self, channel: &str, key: &str) -> Result<Option<String>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT value FROM cursors WHERE channel = ?1 AND key = ?2",
                params![channel, key],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// The queue: open tickets, most severe first, then oldest first.
    pub fn tickets(&self, severity: Option<u8>) -> Result<Vec<TicketRow>> {
        let filter = TicketFilter {
            severity,
            ..TicketFilter::default()
        };
        Ok(self.tickets_page(&filter)?.0)
    }

    /// Outbox work of a channel that is due now: pending rows whose time has come, and rows
    /// whose `sending` lease ran out (a crash; the caller checks whether they went out).
    pub fn due_outbox(&self, channel: &str, kind: &str, limit: usize) -> Result<Vec<OutboxRow>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, ticket_id, kind, recipient, rfc_message_id, payload, status, attempts
                 FROM outbox
                 WHERE channel = ?1 AND kind = ?2
                   AND status IN ('pending', 'sending') AND next_attempt_at <= ?3
                 ORDER BY id LIMIT ?4",
            )?;
            let rows = st.query_map(params![channel, kind, now(), limit as i64], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    ticket_id: r.get(1)?,
                    kind: r.get(2)?,
                    recipient: r.get(3)?,
                    rfc_message_id: r.get(4)?,
                    payload: r.get(5)?,
                    status: r.get(6)?,
                    attempts: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Claims a row before its send starts: `sending`, with a lease of `lease_seconds`. A
    /// crash from here on leaves it `sending`, which tells the next start to check before
    /// sending again; the lease keeps another process (`ingest` beside `serve`) off it. False
    /// when another sender claimed it first.
    pub fn outbox_claim(&self, row: &OutboxRow, lease_seconds: u64) -> Result<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1,
                                   next_attempt_at = ?4
                 WHERE id = ?1 AND status = ?2 AND attempts = ?3",
                params![
                    row.id,
                    row.status,
                    row.attempts,
                    now() + lease_seconds as i64
                ],
            )?;
            Ok(n == 1)
        })
    }

    /// Makes every `sending` row of a channel due now: called by `serve` at start, when no
    /// send of this store can be in flight, so that interrupted work is checked at once.
    pub fn release_interrupted(&self, channel: &str) -> Result<usize> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE outbox SET next_attempt_at = ?2 WHERE channel = ?1 AND status = 'sending'",
                params![channel, now()],
            )?)
        })
    }

    pub fn outbox_sent(&self, id: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?2, last_error = NULL WHERE id = ?1",
                params![id, now()],
            )?;
            Ok(())
        })
    }

    /// A reply's copy came back with its Message-ID: it was sent, whatever the row says.
    pub fn confirm_sent(&self, channel: &str, rfc_message_id: &str) -> Result<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?3, last_error = NULL
                 WHERE channel = ?1 AND rfc_message_id = ?2 AND status IN ('pending', 'sending')",
                params![channel, rfc_message_id, now()],
            )?;
            Ok(n > 0)
        })
    }

    /// A transient failure: back to pending, tried again after `delay_seconds`.
    pub fn outbox_retry(&self, id: i64, delay_seconds: u64, error: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1",
                params![id, now() + delay_seconds as i64, error],
            )?;
            Ok(())
        })
    }

    /// A failed attempt: retried after the backoff when `transient` and attempts remain,
    /// else kept as failed with its error, for an agent to see. `what` names the work in the
    /// log ("reply", "webhook", "Discord reply").
    pub fn outbox_attempt_failed(
        &self,
        row: &OutboxRow,
        error: &str,
        transient: bool,
        retry: &crate::settings::RetrySettings,
        what: &str,
    ) -> Result<()> {
        let attempts = row.attempts + 1;
        if transient && attempts < retry.max_attempts {
            let delay = retry.delay(attempts);
            tracing::warn!(
                outbox = row.id,
                attempts,
                delay,
                error,
                "{what} failed; will retry"
            );
            self.outbox_retry(row.id, delay, error)
        } else {
            tracing::error!(outbox = row.id, attempts, error, "{what} failed for good");
            self.outbox_failed(row.id, error)
        }
    }

    /// A permanent failure (or the last attempt): kept, with its error, for an agent to see.
    pub fn outbox_failed(&self, id: i64, error: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE outbox SET status = 'failed', last_error = ?2 WHERE id = ?1",
                params![id, error],
            )?;
            Ok(())
        })
    }
}

/// Records a message that could not be processed, once per source, inside a transaction.
pub fn insert_quarantine(
    tx: &Transaction,
    channel: &str,
    source: &str,
    reason: &str,
    raw: Option<&[u8]>,
) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO quarantine (channel, source, reason, raw, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![channel, source, reason, raw, now()],
    )?;
    Ok(())
}

/// A short stable name for some bytes (FNV-1a, 64 bits): how a message without an id of its
/// own is recognised when it comes again.
pub fn fingerprint(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Queues outbox work inside a transaction; returns its id.
pub fn insert_outbox(
    tx: &Transaction,
    ticket_id: Option<i64>,
    channel: &str,
    kind: &str,
    recipient: Option<&str>,
    rfc_message_id: Option<&str>,
    payload: &[u8],
) -> Result<i64> {
    tx.execute(
        "INSERT INTO outbox (ticket_id, channel, kind, recipient, rfc_message_id, payload,
                             next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            ticket_id,
            channel,
            kind,
            recipient,
            rfc_message_id,
            payload,
            now()
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Sets a channel cursor inside a transaction.
pub fn set_cursor(tx: &Transaction, channel: &str, key: &str, value: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO cursors (channel, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value",
        params![channel, key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/fl.db");
        let store = Store::open(&path).unwrap();
        store
            .write(|tx| set_cursor(tx, "email", "imap", "7:42"))
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.cursor("email", "imap").unwrap().as_deref(),
            Some("7:42")
        );
    }

    #[test]
    fn quarantine_is_recorded_once_per_source() {
        let store = Store::in_memory().unwrap();
        for _ in 0..2 {
            store
                .write(|tx| {
                    insert_quarantine(tx, "email", "imap:1:5", "no header block", Some(b"junk"))
                })
                .unwrap();
        }
        let n: i64 = store
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(n, 1);
    }
}
