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

    /// Whether a reply left `sending` by a crash already went out. The file transport can
    /// look; an SMTP server cannot be asked, so such a reply is sent again (the receiving
    /// side sees the same Message-ID and can drop it).
    async fn already_sent(&self, message_id: &str) -> bool {
        match self {
            Transport::File(_, dir) => file_holds_message_id(dir, message_id),
            Transport::Smtp(_) => false,
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

/// The delay before attempt `attempts + 1`: first, doubled each time, at most max.
pub fn backoff(retry: &RetrySettings, attempts: u32) -> u64 {
    let factor = 1u64 << attempts.saturating_sub(1).min(30);
    retry
        .first_seconds
        .saturating_mul(factor)
        .min(retry.max_seconds)
}

/// Sends every due reply once; returns how many were sent.
pub async fn deliver_due(
    store: &Store,
    transport: &Transport,
    from: &str,
    retry: &RetrySettings,
) -> Result<usize, StoreError> {
    let mut sent = 0;
    for row in store.due_outbox(CHANNEL, "reply", 100)? {
        if deliver(store, transport, from, retry, &row).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

async fn deliver(
    store: &Store,
    transport: &Transport,
    from: &str,
    retry: &RetrySettings,
    row: &OutboxRow,
) -> Result<bool, StoreError> {
    if row.status == "sending"
        && let Some(id) = &row.rfc_message_id
        && transport.already_sent(id).await
    {
        tracing::info!(outbox = row.id, message_id = %id, "found a reply sent before a crash; marked sent");
        store.outbox_sent(row.id)?;
        return Ok(false);
    }
    let Some(to) = &row.recipient else {
        store.outbox_failed(row.id, "no recipient")?;
        return Ok(false);
    };
    let envelope = match (from.parse(), to.parse()) {
        (Ok(f), Ok(t)) => Envelope::new(Some(f), vec![t]),
        _ => {
            store.outbox_failed(row.id, &format!("bad address: {from} → {to}"))?;
            return Ok(false);
        }
    };
    let envelope = match envelope {
        Ok(e) => e,
        Err(e) => {
            store.outbox_failed(row.id, &e.to_string())?;
            return Ok(false);
        }
    };
    store.outbox_sending(row.id)?;
    match transport.send(&envelope, &row.payload).await {
        Ok(()) => {
            store.outbox_sent(row.id)?;
            tracing::info!(outbox = row.id, ticket = ?row.ticket_id, to = %to, "reply sent");
            Ok(true)
        }
        Err(e) => {
            let attempts = row.attempts + 1;
            if e.transient && attempts < retry.max_attempts {
                let delay = backoff(retry, attempts);
                tracing::warn!(outbox = row.id, attempts, delay, error = %e.message, "send failed; will retry");
                store.outbox_retry(row.id, delay, &e.message)?;
            } else {
                tracing::error!(outbox = row.id, attempts, error = %e.message, "send failed for good");
                store.outbox_failed(row.id, &e.message)?;
            }
            Ok(false)
        }
    }
}

/// The sender task: delivers due replies when woken (a reply was queued) or every second
/// (retries coming due), until shutdown. An in-flight send is finished before it stops.
pub async fn run(
    store: Arc<Store>,
    transport: Transport,
    from: String,
    retry: RetrySettings,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = deliver_due(&store, &transport, &from, &retry).await {
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
