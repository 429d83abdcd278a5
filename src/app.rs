//! The running bot: builds the policy, store and channels from the settings and wires them
//! (`serve`), with a shutdown signal that lets in-flight work finish.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::channels::discord;
use crate::channels::email::reply::ReplyWriter;
use crate::channels::email::{self, EmailChannel, Handled, Labeling, maildir, send};
use crate::channels::http::auth::Tokens;
use crate::channels::http::webhook::{self, Webhook};
use crate::channels::http::{self, HttpState};
use crate::intake::{Intake, ReplyLimits};
use crate::settings::{API_TOKENS_ENV, INBOUND_SECRET_ENV, WEBHOOK_SECRET_ENV};
use crate::settings::{Inbound, Settings};
use crate::store::{Store, StoreError};
use crate::triage::{Policy, policy::EMBEDDED_POLICY_NAME};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("policy {0}: {1}")]
    Policy(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("email: {0}")]
    Email(String),
    #[error("http: {0}")]
    Http(String),
    #[error("discord: {0}")]
    Discord(String),
}

/// Everything `serve` and `ingest` run on.
pub struct App {
    pub settings: Settings,
    pub policy: Arc<Policy>,
    pub store: Arc<Store>,
    pub intake: Arc<Intake>,
    pub email: Arc<EmailChannel>,
    /// API tokens from the environment.
    pub tokens: Tokens,
}

impl App {
    /// Compiles the policy, opens (and migrates) the store, checks the templates: every
    /// problem is found here, before any message is read.
    pub fn build(settings: Settings) -> Result<App, AppError> {
        let policy = if settings.policy.file.is_empty() {
            Policy::from_toml(crate::triage::policy::EMBEDDED_POLICY, EMBEDDED_POLICY_NAME)
                .map_err(|e| AppError::Policy(EMBEDDED_POLICY_NAME.into(), e.to_string()))?
        } else {
            let path = &settings.policy.file;
            let src = std::fs::read_to_string(path)
                .map_err(|e| AppError::Policy(path.clone(), e.to_string()))?;
            Policy::from_toml(&src, path)
                .map_err(|e| AppError::Policy(path.clone(), e.to_string()))?
        };
        let policy = Arc::new(policy);
        let tokens = Tokens::parse(&std::env::var(API_TOKENS_ENV).unwrap_or_default())
            .map_err(|e| AppError::Http(format!("{API_TOKENS_ENV}: {e}")))?;
        let h = &settings.http;
        if h.enabled && tokens.is_empty() {
            let host = h.address.rsplit_once(':').map_or("", |(host, _)| host);
            if !crate::settings::is_loopback(host) {
                return Err(AppError::Http(format!(
                    "http.address {} is not loopback and {API_TOKENS_ENV} is empty: set tokens before exposing the API",
                    h.address
                )));
            }
        }
        if settings.discord.enabled
            && std::env::var_os(crate::settings::DISCORD_TOKEN_ENV).is_none()
        {
            return Err(AppError::Discord(format!(
                "discord.enabled but {} is not set: the bot token comes from the environment",
                crate::settings::DISCORD_TOKEN_ENV
            )));
        }
        let mut events = Vec::new();
        if h.enabled && !h.webhook_url.is_empty() {
            events.push(crate::intake::EVENTS);
        }
        if settings.discord.enabled && settings.discord.triage_channel != 0 {
            events.push(crate::intake::AGENT_ROOM);
        }
        if events.contains(&crate::intake::EVENTS) && std::env::var_os(WEBHOOK_SECRET_ENV).is_none()
        {
            return Err(AppError::Http(format!(
                "http.webhook_url is set but {WEBHOOK_SECRET_ENV} is not: webhooks are always signed"
            )));
        }
        let store = Arc::new(Store::open(&settings.store.path)?);
        let e = &settings.email;
        let templates = (!e.templates.is_empty()).then(|| PathBuf::from(&e.templates));
        let writer = ReplyWriter::new(
            &e.address,
            &e.display_name,
            &e.message_id_domain,
            &e.ticket_prefix,
            templates.as_deref(),
        )
        .map_err(|e| AppError::Email(e.to_string()))?;
        let intake = Arc::new(Intake {
            policy: policy.clone(),
            store: store.clone(),
            limits: ReplyLimits {
                per_thread: e.replies_per_thread_per_hour,
                per_sender: e.replies_per_sender_per_hour,
            },
            events,
            latency: Default::default(),
        });
        let labeling = Labeling {
            keywords: e.imap.keywords,
            severity_folders: e.imap.severity_folders.clone(),
            quarantine_keyword: e.imap.quarantine_keyword.clone(),
            quarantine_folder: (!e.imap.quarantine_folder.is_empty())
                .then(|| e.imap.quarantine_folder.clone()),
        };
        let email = Arc::new(EmailChannel {
            intake: intake.clone(),
            writer,
            max_bytes: e.max_message_bytes,
            labeling,
        });
        Ok(App {
            settings,
            policy,
            store,
            intake,
            email,
            tokens,
        })
    }

    /// Handles one raw message given on the command line or piped by an MTA, then tries to
    /// send the replies it queued (a failure stays in the outbox for `serve` to retry).
    pub async fn ingest(&self, raw: &[u8], source: &str) -> Result<Handled, AppError> {
        let handled = self.email.receive(raw, source, None, None)?;
        if self.settings.email.enabled {
            let sender =
                send::Sender::from_settings(&self.settings.email).map_err(AppError::Email)?;
            send::deliver_due(&self.store, &sender).await?;
        }
        Ok(handled)
    }

    /// Runs every enabled channel until `shutdown` resolves; then stops taking new work,
    /// lets each task finish the message or send in hand, and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let e = &self.settings.email;
        if e.enabled {
            let sender = send::Sender::from_settings(e).map_err(AppError::Email)?;
            // Sends this store left half-done when the last serve stopped abnormally: check
            // them now rather than after their lease runs out.
            let interrupted = self.store.release_interrupted(email::CHANNEL)?;
            if interrupted > 0 {
                tracing::warn!(
                    interrupted,
                    "outbox work was cut short by the last stop; checking it first"
                );
            }
            tasks.push(tokio::spawn(send::run(
                self.store.clone(),
                sender,
                wake.clone(),
                stop_rx.clone(),
            )));
            match e.inbound {
                Inbound::Maildir => {
                    maildir::prepare(&e.maildir.path).map_err(|err| {
                        AppError::Email(format!("spool {}: {err}", e.maildir.path.display()))
                    })?;
                    tracing::info!(spool = %e.maildir.path.display(), "reading the Maildir spool");
                    tasks.push(tokio::spawn(maildir::run(
                        self.email.clone(),
                        e.maildir.path.clone(),
                        Duration::from_millis(e.maildir.poll_milliseconds.max(10)),
                        wake.clone(),
                        stop_rx.clone(),
                    )));
                }
                Inbound::Imap => {
                    tasks.push(tokio::spawn(email::imap::run(
                        self.email.clone(),
                        e.imap.clone(),
                        wake.clone(),
                        stop_rx.clone(),
                    )));
                }
                Inbound::None => {}
            }
        }
        let h = &self.settings.http;
        if h.enabled {
            let listener = tokio::net::TcpListener::bind(&h.address)
                .await
                .map_err(|e| AppError::Http(format!("cannot listen on {}: {e}", h.address)))?;
            let state = Arc::new(HttpState {
                intake: self.intake.clone(),
                tokens: self.tokens.clone(),
                inbound_secret: std::env::var(INBOUND_SECRET_ENV)
                    .ok()
                    .map(String::into_bytes),
                max_body_bytes: h.max_body_bytes,
            });
            let local = listener
                .local_addr()
                .map_err(|e| AppError::Http(e.to_string()))?;
            tracing::info!(address = %local, "HTTP API and queue page listening");
            let mut stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = http::serve(listener, state, shutdown).await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            }));
            if !h.webhook_url.is_empty() {
                let secret = std::env::var(WEBHOOK_SECRET_ENV)
                    .unwrap_or_default()
                    .into_bytes();
                let webhook = Webhook::new(
                    &h.webhook_url,
                    secret,
                    Duration::from_secs(h.webhook_timeout_seconds),
                    self.settings.email.retry.clone(),
                )
                .map_err(AppError::Http)?;
                tasks.push(tokio::spawn(webhook::run(
                    self.store.clone(),
                    webhook,
                    stop_rx.clone(),
                )));
            }
        }
        let d = &self.settings.discord;
        if d.enabled {
            let http = discord::http_client(d).map_err(AppError::Discord)?;
            let channel = Arc::new(discord::Discord::new(
                self.intake.clone(),
                d.clone(),
                &self.settings.email.ticket_prefix,
            ));
            tracing::info!(
                channels = d.support_channels.len(),
                room = d.triage_channel,
                "starting the Discord channel"
            );
            tasks.push(tokio::spawn(discord::run(
                channel,
                http,
                self.settings.email.retry.clone(),
                stop_rx.clone(),
            )));
        }
        tracing::info!(store = %self.settings.store.path.display(), "firstline is serving");
        shutdown.await;
        tracing::info!("shutting down: finishing the work in hand");
        let _ = stop_tx.send(true);
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a task ended abnormally");
            }
        }
        Ok(())
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
