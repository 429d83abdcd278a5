//! Sending replies from the outbox: SMTP (lettre) or `.eml` files, marked `sending` before
//! and `sent` after, retried with backoff, never sent twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::{Notify, watch};

use super::CHANNEL;
use crate::settings::{EmailSettings, Outbound, RetrySettings, SMTP_PASSWORD_ENV, Security};
use crate::store::{OutboxRow, Store, StoreError};

/// Why a send failed, and whether trying again later can help.
#[derive(Debug)]
pub struct SendError {
    pub transient: bool,
    pub message: String,
}

/// How replies leave: the transport, the envelope sender, the copy address, the retry
/// policy.
pub struct Sender {
    pub transport: Transport,
    pub from: String,
    /// Every reply also goes here (the support mailbox): its copy confirms the send.
    pub copy_to: Option<String>,
    pub confirm_seconds: u64,
    pub retry: RetrySettings,
    /// How long a claimed send may take before it counts as interrupted.
    pub lease_seconds: u64,
}

impl Sender {
    pub fn from_settings(email: &EmailSettings) -> Result<Sender, String> {
        Ok(Sender {
            transport: Transport::from_settings(email)?,
            from: email.address.clone(),
            copy_to: (!email.copy_to.is_empty()).then(|| email.copy_to.clone()),
            confirm_seconds: email.confirm_seconds,
            retry: email.retry.clone(),
            lease_seconds: email.smtp.timeout_seconds.saturating_mul(4).max(60),
        })
    }
}

/// Where replies go.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl Transport {
    /// Builds the transport the settings name. The SMTP password comes from the environment.
    pub fn from_settings(email: &EmailSettings) -> Result<Transport, String> {
        match email.outbound {
            Outbound::File => {
                let dir = email.outbox.dir.clone();
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("email.outbox.dir {}: {e}", dir.display()))?;
                Ok(Transport::File(AsyncFileTransport::new(&dir), dir))
            }
            Outbound::Smtp => {
                let s = &email.smtp;
                let tls = |host: &str| {
                    TlsParameters::new(host.to_string())
                        .map_err(|e| format!("email.smtp TLS for {host}: {e}"))
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                    .port(s.port)
                    .timeout(Some(Duration::from_secs(s.timeout_seconds)));
                builder = match s.security {
                    Security::Tls => builder.tls(Tls::Wrapper(tls(&s.host)?)),
                    Security::Starttls => builder.tls(Tls::Required(tls(&s.host)?)),
                    Security::Plain => builder.tls(Tls::None),
                };
                if !s.user.is_empty() {
                    let password = std::env::var(SMTP_PASSWORD_ENV).map_err(|_| {
                        format!(
                            "email.smtp.user is set but {SMTP_PASSWORD_ENV} is not: set the SMTP password in the environment"
                        )
                    })?;
                    builder = builder.credentials(Credentials::new(s.user.clone(), password));
                }
                Ok(Transport::Smtp(builder.build()))
            }
        }
    }

    async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), SendError> {
        match self {
            Transport::Smtp(t) => t.send_raw(envelope, bytes).await.map(|_| ()).map_err(|e| {
                SendError {
                    // Refused outright (5xx) is permanent; everything else (4xx, a dropped
                    // connection, a timeout) may work later.
                    transient: !e.is_permanent(),
                    message: e.to_string(),
                }
            }),
            Transport::File(t, _) => {
                t.send_raw(envelope, bytes)
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError {
                        transient: true,
                        message: e.to_string(),
                    })
            }
        }
    }

    /// Whether a reply left `sending` by a crash already went out, when the transport can
    /// tell (the file transport can look; an SMTP server cannot be asked).
    fn already_sent(&self, message_id: &str) -> Option<bool> {
        match self {
            Transport::File(_, dir) => Some(file_holds_message_id(dir, message_id)),
            Transport::Smtp(_) => None,
        }
    }
}

fn file_holds_message_id(dir: &Path, message_id: &str) -> bool {
    let needle = format!("<{message_id}>");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        std::fs::read(e.path()).is_ok_and(|bytes| {
            let head = &bytes[..bytes.len().min(8192)];
            String::from_utf8_lossy(head).contains(&needle)
        })
    })
}

/// Replies sent at once. lettre writes a message's end (`CRLF.CRLF`) apart from its body,
/// and without TCP_NODELAY the kernel holds it until the server acknowledges the body (a
/// delayed ACK, ~40 ms): one connection at a time caps a backlog at ~20 replies/s. Several
/// sends in flight (over lettre's connection pool) overlap those waits.
const SENDS_IN_FLIGHT: usize = 8;

/// Sends every due reply once; returns how many were sent.
pub async fn deliver_due(store: &Store, sender: &Sender) -> Result<usize, StoreError> {
    let rows = store.due_outbox(CHANNEL, "reply", 200)?;
    let mut sent = 0;
    for chunk in rows.chunks(SENDS_IN_FLIGHT) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|row| deliver(store, sender, row))
            .collect();
        for r in futures::future::join_all(sends).await {
            if r? {
                sent += 1;
            }
        }
    }
    Ok(sent)
}

fn envelope(from: &str, to: &str, copy_to: Option<&str>) -> Result<Envelope, String> {
    let parse = |a: &str| {
        a.parse::<lettre::Address>()
            .map_err(|e| format!("bad address {a:?}: {e}"))
    };
    let mut rcpt = vec![parse(to)?];
    if let Some(copy) = copy_to {
        rcpt.push(parse(copy)?);
    }
    Envelope::new(Some(parse(from)?), rcpt).map_err(|e| e.to_string())
}

async fn deliver(store: &Store, sender: &Sender, row: &OutboxRow) -> Result<bool, StoreError> {
    if row.status == "sending"
        && let Some(id) = &row.rfc_message_id
    {
        // The last attempt was cut short (a crash between the send and its record).
        match sender.transport.already_sent(id) {
            Some(true) => {
                tracing::info!(outbox = row.id, message_id = %id, "found a reply sent before a crash; marked sent");
                store.outbox_sent(row.id)?;
                return Ok(false);
            }
            Some(false) => {}
            None if sender.copy_to.is_some() => {
                // Its copy in the support mailbox will confirm it, if it went out; send it
                // again only when no copy came within confirm_seconds.
                tracing::info!(outbox = row.id, message_id = %id, wait = sender.confirm_seconds, "a send was cut short; waiting for its copy before sending again");
                store.outbox_retry(
                    row.id,
                    sender.confirm_seconds,
                    "interrupted; waiting for the copy in the mailbox before sending again",
                )?;
                return Ok(false);
            }
            None => {
                tracing::warn!(outbox = row.id, message_id = %id, "a send was cut short and cannot be checked (set email.copy_to); sending again");
            }
        }
    }
    let Some(to) = &row.recipient else {
        store.outbox_failed(row.id, "no recipient")?;
        return Ok(false);
    };
    let envelope = match envelope(&sender.from, to, sender.copy_to.as_deref()) {
        Ok(e) => e,
        Err(e) => {
            store.outbox_failed(row.id, &e)?;
            return Ok(false);
        }
    };
    if !store.outbox_claim(row, sender.lease_seconds)? {
        return Ok(false);
    }
    match sender.transport.send(&envelope, &row.payload).await {
        Ok(()) => {
            store.outbox_sent(row.id)?;
            tracing::info!(outbox = row.id, ticket = ?row.ticket_id, to = %to, "reply sent");
            Ok(true)
        }
        Err(e) => {
            store.outbox_attempt_failed(row, &e.message, e.transient, &sender.retry, "reply")?;
            Ok(false)
        }
    }
}

/// The sender task: delivers due replies when woken (a reply was queued) or every second
/// (retries coming due), until shutdown. An in-flight send is finished before it stops.
pub async fn run(
    store: Arc<Store>,
    sender: Sender,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = deliver_due(&store, &sender).await {
            tracing::error!(error = %e, "outbox: store error");
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
