//! IMAP inbound: the support mailbox read by UIDVALIDITY + UID (never by `\Seen`), new mail
//! noticed with IDLE (or polling), backfill after a reconnect or restart, and the label jobs
//! (keywords, moves) applied to the originals.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use async_imap::extensions::idle::IdleResponse;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use super::{CHANNEL, EmailChannel, Handled, LabelJob, MailboxMessage};
use crate::settings::{IMAP_PASSWORD_ENV, ImapSettings, Security};

/// A connection, plain (loopback only, by config) or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}
type Conn = Box<dyn Io>;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, String),
    #[error("login as {0} refused: {1}")]
    Login(String, async_imap::error::Error),
    #[error("IMAP: {0}")]
    Protocol(#[from] async_imap::error::Error),
    #[error("{IMAP_PASSWORD_ENV} is not set: the IMAP password comes from the environment")]
    NoPassword,
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the server closed the connection")]
    Closed,
}

/// Messages fetched per round trip during a backfill: bounds the memory a large backlog takes.
const BATCH: usize = 50;

/// How long a label job may take before it counts as interrupted.
const LABEL_LEASE: u64 = 120;

/// IDLE is renewed before servers drop it (RFC 2177 asks for less than 29 minutes).
const IDLE_RENEW: Duration = Duration::from_secs(20 * 60);

async fn connect(s: &ImapSettings) -> Result<Session<Conn>, ImapError> {
    let password = std::env::var(IMAP_PASSWORD_ENV).map_err(|_| ImapError::NoPassword)?;
    let addr = format!("{}:{}", s.host, s.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| ImapError::Connect(addr.clone(), e))?;
    let stream: Conn = match s.security {
        Security::Plain => Box::new(tcp),
        Security::Tls | Security::Starttls => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| ImapError::Tls(addr.clone(), e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let name = ServerName::try_from(s.host.clone())
                .map_err(|e| ImapError::Tls(addr.clone(), e.to_string()))?;
            let tls = TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| ImapError::Tls(addr.clone(), e.to_string()))?;
            Box::new(tls)
        }
    };
    let mut client = async_imap::Client::new(stream);
    client
        .read_response()
        .await
        .map_err(|e| ImapError::Connect(addr.clone(), e))?
        .ok_or(ImapError::Closed)?;
    client
        .login(&s.user, &password)
        .await
        .map_err(|(e, _)| ImapError::Login(s.user.clone(), e))
}

/// The store key of a mailbox's cursor.
fn cursor_key(s: &ImapSettings) -> String {
    format!("imap:{}@{}:{}/{}", s.user, s.host, s.port, s.mailbox)
}

/// Reads the mailbox until shutdown, reconnecting with backoff after any failure.
pub async fn run(
    channel: Arc<EmailChannel>,
    settings: ImapSettings,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let first = settings.reconnect_seconds.max(1);
    let mut delay = first;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut connected = false;
        match watch_mailbox(&channel, &settings, &wake, &mut shutdown, &mut connected).await {
            Ok(()) => return,
            Err(e) => {
                if connected {
                    delay = first;
                }
                tracing::warn!(error = %e, retry_in = delay, "IMAP connection lost; reconnecting");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(delay)) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(settings.reconnect_max_seconds.max(first));
    }
}

/// One connection's life: backfill, labels, then wait for news (IDLE or a poll) and repeat.
/// Returns Ok only on shutdown.
async fn watch_mailbox(
    channel: &Arc<EmailChannel>,
    s: &ImapSettings,
    wake: &Notify,
    shutdown: &mut watch::Receiver<bool>,
    connected: &mut bool,
) -> Result<(), ImapError> {
    let mut session = connect(s).await?;
    let caps = session.capabilities().await?;
    let can_idle = s.idle && caps.has_str("IDLE");
    let can_move = caps.has_str("MOVE");
    let mailbox = session.select(&s.mailbox).await?;
    let uidvalidity = mailbox.uid_validity.unwrap_or(0);
    *connected = true;
    tracing::info!(mailbox = %s.mailbox, uidvalidity, idle = can_idle, "IMAP connected");
    let mut known_folders = HashSet::new();
    loop {
        backfill(&mut session, channel, s, uidvalidity, wake, shutdown).await?;
        apply_labels(
            &mut session,
            channel,
            s,
            uidvalidity,
            can_move,
            &mut known_folders,
        )
        .await?;
        if *shutdown.borrow() {
            let _ = session.logout().await;
            return Ok(());
        }
        if can_idle {
            let mut idle = session.idle();
            idle.init().await?;
            let outcome = {
                let (wait, stop) = idle.wait_with_timeout(IDLE_RENEW);
                tokio::pin!(wait);
                tokio::select! {
                    r = &mut wait => r,
                    _ = shutdown.changed() => {
                        drop(stop);
                        wait.await
                    }
                }
            };
            session = idle.done().await?;
            match outcome? {
                IdleResponse::NewData(_)
                | IdleResponse::Timeout
                | IdleResponse::ManualInterrupt => {}
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(s.poll_seconds.max(1))) => {}
                _ = shutdown.changed() => {}
            }
            session.noop().await?;
        }
    }
}

/// Processes every message after the cursor, in UID order, one transaction each (the cursor
/// moves with the message, so a crash resumes exactly after the last one stored).
async fn backfill(
    session: &mut Session<Conn>,
    channel: &Arc<EmailChannel>,
    s: &ImapSettings,
    uidvalidity: u32,
    wake: &Notify,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), ImapError> {
    let key = cursor_key(s);
    let stored = channel.intake.store.cursor(CHANNEL, &key)?;
    let mut last = match stored.as_deref().and_then(|v| v.split_once(':')) {
        Some((v, uid)) if v.parse() == Ok(uidvalidity) => uid.parse::<u32>().unwrap_or(0),
        Some(_) => {
            // The server renumbered the mailbox: read it again; messages already recorded are
            // recognised by their Message-ID and not processed twice.
            tracing::warn!(mailbox = %s.mailbox, uidvalidity, "UIDVALIDITY changed; re-reading the mailbox");
            0
        }
        None => 0,
    };
    loop {
        // `N:*` always returns the last message even when its UID is below N: filter.
        let sizes: Vec<(u32, u32)> = session
            .uid_fetch(format!("{}:*", last + 1), "(UID RFC822.SIZE)")
            .await?
            .try_collect::<Vec<_>>()
            .await?
            .iter()
            .filter_map(|f| Some((f.uid?, f.size.unwrap_or(0))))
            .filter(|(uid, _)| *uid > last)
            .collect();
        if sizes.is_empty() {
            return Ok(());
        }
        let mut sizes = sizes;
        sizes.sort_unstable();
        for chunk in sizes.chunks(BATCH) {
            let wanted: Vec<String> = chunk
                .iter()
                .filter(|(_, size)| u64::from(*size) <= channel.max_bytes)
                .map(|(uid, _)| uid.to_string())
                .collect();
            let mut bodies = std::collections::HashMap::new();
            if !wanted.is_empty() {
                let fetched: Vec<_> = session
                    .uid_fetch(wanted.join(","), "(UID BODY.PEEK[])")
                    .await?
                    .try_collect()
                    .await?;
                for f in fetched {
                    if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                        bodies.insert(uid, body.to_vec());
                    }
                }
            }
            for &(uid, size) in chunk {
                if *shutdown.borrow() {
                    // Stop between messages: the cursor says where to resume.
                    return Ok(());
                }
                let at = MailboxMessage {
                    mailbox: s.mailbox.clone(),
                    uidvalidity,
                    uid,
                };
                let source = format!("imap:{}:{uidvalidity}:{uid}", s.mailbox);
                let cursor = Some((key.clone(), format!("{uidvalidity}:{uid}")));
                let handled = tokio::task::block_in_place(|| {
                    if u64::from(size) > channel.max_bytes {
                        channel.too_large(&source, u64::from(size), cursor, Some(&at))
                    } else if let Some(raw) = bodies.get(&uid) {
                        channel.receive(raw, &source, cursor, Some(&at))
                    } else {
                        // Expunged between the two fetches: nothing to process.
                        channel
                            .intake
                            .store
                            .write(|tx| {
                                crate::store::set_cursor(
                                    tx,
                                    CHANNEL,
                                    &key,
                                    &cursor_value(uidvalidity, uid),
                                )
                            })
                            .map(|_| Handled::Duplicate)
                    }
                })?;
                if let Handled::Triaged(r) = &handled {
                    tracing::info!(uid, ticket = r.ticket_id, severity = r.severity, reply = %r.reply, "triaged");
                    if !r.queued.is_empty() {
                        wake.notify_one();
                    }
                }
                last = uid;
            }
        }
    }
}

fn cursor_value(uidvalidity: u32, uid: u32) -> String {
    format!("{uidvalidity}:{uid}")
}

/// Applies queued label jobs for this mailbox: keywords first, then the move. Keywords are
/// idempotent, so a job interrupted by a crash is simply done again.
async fn apply_labels(
    session: &mut Session<Conn>,
    channel: &Arc<EmailChannel>,
    s: &ImapSettings,
    uidvalidity: u32,
    can_move: bool,
    known_folders: &mut HashSet<String>,
) -> Result<(), ImapError> {
    let store = &channel.intake.store;
    for row in store.due_outbox(CHANNEL, "label", 500)? {
        let job: LabelJob = match serde_json::from_slice(&row.payload) {
            Ok(j) => j,
            Err(e) => {
                store.outbox_failed(row.id, &format!("unreadable label job: {e}"))?;
                continue;
            }
        };
        if job.message.mailbox != s.mailbox || job.message.uidvalidity != uidvalidity {
            store.outbox_failed(row.id, "the mailbox was renumbered (UIDVALIDITY changed)")?;
            continue;
        }
        if !store.outbox_claim(&row, LABEL_LEASE)? {
            continue;
        }
        let uid = job.message.uid.to_string();
        let result = label_one(session, &uid, &job, can_move, known_folders).await;
        match result {
            Ok(()) => store.outbox_sent(row.id)?,
            // The server said NO (the message is gone, a bad folder name): retrying won't help.
            Err(ImapError::Protocol(async_imap::error::Error::No(msg))) => {
                tracing::warn!(uid = job.message.uid, error = %msg, "the server refused a label");
                store.outbox_failed(row.id, &msg)?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn label_one(
    session: &mut Session<Conn>,
    uid: &str,
    job: &LabelJob,
    can_move: bool,
    known_folders: &mut HashSet<String>,
) -> Result<(), ImapError> {
    if !job.keywords.is_empty() {
        let _: Vec<_> = session
            .uid_store(uid, format!("+FLAGS.SILENT ({})", job.keywords.join(" ")))
            .await?
            .try_collect()
            .await?;
    }
    if let Some(folder) = &job.folder {
        if !known_folders.contains(folder) {
            // CREATE fails when the folder exists; that is fine.
            let _ = session.create(folder).await;
            known_folders.insert(folder.clone());
        }
        if can_move {
            session.uid_mv(uid, folder).await?;
        } else {
            session.uid_copy(uid, folder).await?;
            let _: Vec<_> = session
                .uid_store(uid, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect()
                .await?;
            let _: Vec<_> = session.uid_expunge(uid).await?.try_collect().await?;
        }
    }
    Ok(())
}
