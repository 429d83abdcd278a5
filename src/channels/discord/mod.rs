//! The chat channel on Discord (serenity): customers' support channels (a new message is a
//! ticket, answered in a thread on it; the thread is the conversation), the agents' triage
//! room (a card per ticket, updated in place), and the slash commands /triage, /severity,
//! /ticket.

mod commands;
mod room;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use minijinja::Environment;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serenity::all::{
    ChannelId, Context, CreateMessage, CreateThread, EventHandler, GatewayIntents, Http,
    HttpBuilder, Interaction, Message, MessageId, Ready,
};
use serenity::async_trait;
use tokio::sync::watch;

use crate::intake::{Context as TicketContext, Inbound, Intake, NewOutbox, Received};
use crate::settings::{DISCORD_TOKEN_ENV, DiscordSettings, RetrySettings};
use crate::store::{OutboxRow, StoreError};

/// The channel's name in the store.
pub const CHANNEL: &str = "discord";

const TEMPLATES: &[(&str, &str)] = &[
    (
        "discord.md",
        include_str!("../../../config/templates/discord.md"),
    ),
    (
        "discord.de.md",
        include_str!("../../../config/templates/discord.de.md"),
    ),
    (
        "discord.fr.md",
        include_str!("../../../config/templates/discord.fr.md"),
    ),
    (
        "discord.es.md",
        include_str!("../../../config/templates/discord.es.md"),
    ),
    (
        "discord.ru.md",
        include_str!("../../../config/templates/discord.ru.md"),
    ),
    (
        "discord.zh.md",
        include_str!("../../../config/templates/discord.zh.md"),
    ),
];

/// A reply waiting in the outbox: where it goes and what it says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplyJob {
    /// The support channel the customer wrote in.
    pub parent: u64,
    /// The customer's first message: the thread is started on it.
    pub message: u64,
    /// The thread, when it exists already (a follow-up).
    pub thread: Option<u64>,
    pub thread_name: String,
    pub content: String,
}

/// Where a customer's message stands, which decides where the answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In a support channel: a new ticket, answered in a thread started on the message.
    Channel,
    /// In a thread under a support channel (a forum post, a thread the customer started, or
    /// the thread of an earlier ticket): answered in that thread.
    Thread,
}

/// What the handler and the senders share.
pub struct Discord {
    pub intake: Arc<Intake>,
    pub settings: DiscordSettings,
    pub ticket_prefix: String,
    templates: Environment<'static>,
    /// The bot's own user id, known after READY.
    me: AtomicU64,
    /// Channels already looked up: whether each is a thread under a support channel.
    threads: std::sync::Mutex<std::collections::HashMap<u64, bool>>,
}

impl Discord {
    pub fn new(intake: Arc<Intake>, settings: DiscordSettings, ticket_prefix: &str) -> Discord {
        let mut templates = Environment::new();
        for (name, text) in TEMPLATES {
            templates
                .add_template(name, text)
                .expect("the Discord templates are valid (checked by the tests)");
        }
        Discord {
            intake,
            settings,
            ticket_prefix: ticket_prefix.to_string(),
            templates,
            me: AtomicU64::new(0),
            threads: Default::default(),
        }
    }

    /// The reply text for a decision.
    fn reply_text(&self, ctx: &TicketContext) -> String {
        let policy = &self.intake.policy;
        let vars = json!({
            "token": format!("{}-{}", self.ticket_prefix, ctx.ticket_id),
            "severity": ctx.severity,
            "severity_name": policy.level_name(ctx.severity),
            "rationale": ctx.decision.rationale,
            "questions": ctx.decision.questions.iter().map(|q| q.text.as_str()).collect::<Vec<_>>(),
            "changed": !ctx.new_ticket && ctx.previous.is_some_and(|p| p != ctx.severity),
            "previous": ctx.previous,
            "previous_name": ctx.previous.map(|p| policy.level_name(p)),
        });
        let own = format!("discord.{}.md", ctx.decision.language);
        let name = if self.templates.get_template(&own).is_ok() {
            own
        } else {
            "discord.md".to_string()
        };
        let text = self
            .templates
            .get_template(&name)
            .and_then(|t| t.render(minijinja::value::Serde(&vars)))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "the Discord template failed; sending the rationale only");
                ctx.decision.rationale.clone()
            });
        // Discord refuses messages over 2000 characters.
        truncate(&text, 1900)
    }

    /// Whether a message is firstline's business, and where it stands: in a support
    /// channel, in a thread of one (asked of Discord once per channel), or neither.
    pub async fn placement(&self, http: &Http, msg: &Message) -> Option<Placement> {
        if msg.author.bot || msg.author.id.get() == self.me.load(Ordering::Relaxed) {
            return None;
        }
        let channel = msg.channel_id.get();
        if self.settings.support_channels.contains(&channel) {
            return Some(Placement::Channel);
        }
        // The thread of a ticket already open: no need to ask Discord.
        if let Ok(Some(_)) = self
            .intake
            .store
            .ticket_by_thread_key(CHANNEL, &channel.to_string())
        {
            return Some(Placement::Thread);
        }
        let known = self.threads.lock().ok()?.get(&channel).copied();
        let is_support_thread = match known {
            Some(b) => b,
            None => {
                let b = match msg.channel_id.to_channel(http).await {
                    Ok(serenity::all::Channel::Guild(c)) => {
                        c.parent_id
                            .is_some_and(|p| self.settings.support_channels.contains(&p.get()))
                            && c.thread_metadata.is_some()
                    }
                    Ok(_) => false,
                    Err(e) => {
                        tracing::warn!(channel, error = %e, "cannot look up a channel; message ignored");
                        return None;
                    }
                };
                if let Ok(mut t) = self.threads.lock() {
                    t.insert(channel, b);
                }
                b
            }
        };
        is_support_thread.then_some(Placement::Thread)
    }

    /// Triages a customer message; the reply is queued in the outbox with the decision.
    /// Returns None for a message that is not the bot's business.
    pub fn receive(
        &self,
        msg: &Message,
        placement: Placement,
    ) -> Result<Option<Received>, StoreError> {
        let channel = msg.channel_id.get();
        let new_thread = placement == Placement::Channel;
        // In a support channel the message starts a ticket; in a thread, the thread is the
        // ticket (one firstline started, or one the customer started: a forum post).
        let thread_key = if new_thread {
            msg.id.get().to_string()
        } else {
            channel.to_string()
        };
        let opens = new_thread
            || self
                .intake
                .store
                .ticket_by_thread_key(CHANNEL, &thread_key)?
                .is_none();
        if msg.content.trim().is_empty() {
            return Ok(None);
        }
        let first_line = msg.content.lines().next().unwrap_or("").trim();
        let inbound = Inbound {
            channel: CHANNEL.to_string(),
            source: format!("discord:{}", msg.id.get()),
            message_id: Some(msg.id.get().to_string()),
            sender: Some(format!(
                "{} <discord:{}>",
                msg.author.name,
                msg.author.id.get()
            )),
            subject: opens.then(|| truncate(first_line, 90)),
            text: msg.content.clone(),
            raw: serde_json::to_vec(msg).ok(),
            thread_key: Some(thread_key),
            ..Inbound::default()
        };
        let received = self.intake.receive(&inbound, |ctx| {
            if ctx.reply.is_err() {
                return Vec::new();
            }
            let job = ReplyJob {
                parent: channel,
                message: msg.id.get(),
                thread: (!new_thread).then_some(channel),
                thread_name: format!(
                    "{}-{} {}",
                    self.ticket_prefix,
                    ctx.ticket_id,
                    truncate(ctx.subject.unwrap_or(first_line), 80)
                ),
                content: self.reply_text(ctx),
            };
            vec![NewOutbox {
                kind: "reply",
                recipient: inbound.sender.clone(),
                rfc_message_id: None,
                payload: serde_json::to_vec(&job).unwrap_or_default(),
            }]
        })?;
        Ok(Some(received))
    }
}

/// At most `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Discord's answer to a request, when it refused it.
fn discord_error(e: &serenity::Error) -> Option<(u16, isize)> {
    match e {
        serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
            Some((r.status_code.as_u16(), r.error.code))
        }
        _ => None,
    }
}

/// Whether trying again later can help: Discord's 5xx and 429, network trouble.
fn transient(e: &serenity::Error) -> bool {
    match discord_error(e) {
        Some((status, _)) => status >= 500 || status == 429,
        None => true,
    }
}

/// Discord's code for "a thread has already been created for this message".
const THREAD_EXISTS: isize = 160004;

struct Handler(Arc<Discord>);

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        self.0.me.store(ready.user.id.get(), Ordering::Relaxed);
        tracing::info!(user = %ready.user.name, "Discord connected");
        if self.0.settings.guild != 0 {
            commands::register(&ctx, self.0.settings.guild).await;
        }
    }

    async fn message(&self, ctx: Context, msg: Message) {
        let Some(placement) = self.0.placement(&ctx.http, &msg).await else {
            return;
        };
        let discord = self.0.clone();
        let id = msg.id.get();
        let result = tokio::task::spawn_blocking(move || discord.receive(&msg, placement)).await;
        match result {
            Ok(Ok(Some(Received::Triaged(r)))) => {
                tracing::info!(message = id, ticket = r.ticket_id, severity = r.severity, reply = %r.reply, "triaged");
            }
            Ok(Ok(Some(Received::Duplicate { .. }))) => {
                tracing::info!(message = id, "already triaged; not answered again");
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::error!(message = id, error = %e, "store error; message not triaged")
            }
            Err(e) => tracing::error!(message = id, error = %e, "triage task failed"),
        }
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if let Interaction::Command(cmd) = interaction {
            commands::handle(&self.0, &ctx, &cmd).await;
        }
    }
}

/// Sends one queued reply: the thread first (on the customer's message), then the text.
async fn send_reply(http: &Http, job: &ReplyJob) -> Result<(), serenity::Error> {
    let thread = match job.thread {
        Some(t) => ChannelId::new(t),
        None => {
            let builder = CreateThread::new(job.thread_name.clone())
                .auto_archive_duration(serenity::all::AutoArchiveDuration::OneWeek);
            match ChannelId::new(job.parent)
                .create_thread_from_message(http, MessageId::new(job.message), builder)
                .await
            {
                Ok(t) => t.id,
                // Made before a crash or by someone else: a thread made from a message has
                // the message's id.
                Err(e) if discord_error(&e).is_some_and(|(_, code)| code == THREAD_EXISTS) => {
                    ChannelId::new(job.message)
                }
                Err(e) => return Err(e),
            }
        }
    };
    thread
        .send_message(http, CreateMessage::new().content(job.content.clone()))
        .await?;
    Ok(())
}

/// Lease of a claimed Discord send.
const LEASE: u64 = 120;

async fn deliver_replies(
    discord: &Discord,
    http: &Http,
    retry: &RetrySettings,
) -> Result<(), StoreError> {
    let store = &discord.intake.store;
    for row in store.due_outbox(CHANNEL, "reply", 50)? {
        if !store.outbox_claim(&row, LEASE)? {
            continue;
        }
        let job: ReplyJob = match serde_json::from_slice(&row.payload) {
            Ok(j) => j,
            Err(e) => {
                store.outbox_failed(row.id, &format!("unreadable reply job: {e}"))?;
                continue;
            }
        };
        match send_reply(http, &job).await {
            Ok(()) => store.outbox_sent(row.id)?,
            Err(e) => settle_failure(store, &row, &e, retry)?,
        }
    }
    Ok(())
}

fn settle_failure(
    store: &crate::store::Store,
    row: &OutboxRow,
    e: &serenity::Error,
    retry: &RetrySettings,
) -> Result<(), StoreError> {
    store.outbox_attempt_failed(row, &e.to_string(), transient(e), retry, "Discord send")
}

/// Builds the HTTP client: the token from the environment, the proxy from the settings
/// (tests point it at a fake Discord; serenity's rate limiter ignores the proxy, so it is
/// off there and on for the real Discord).
pub fn http_client(settings: &DiscordSettings) -> Result<Http, String> {
    let token = std::env::var(DISCORD_TOKEN_ENV).map_err(|_| {
        format!("discord.enabled but {DISCORD_TOKEN_ENV} is not set: the bot token comes from the environment")
    })?;
    let mut builder = HttpBuilder::new(token);
    if !settings.api_proxy.is_empty() {
        builder = builder
            .proxy(settings.api_proxy.clone())
            .ratelimiter_disabled(true);
    }
    Ok(builder.build())
}

/// Runs the gateway client and the senders until shutdown.
pub async fn run(
    discord: Arc<Discord>,
    http: Http,
    retry: RetrySettings,
    mut shutdown: watch::Receiver<bool>,
) {
    // Message content is needed to read customers' words; nothing else privileged.
    let intents =
        GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES | GatewayIntents::MESSAGE_CONTENT;
    let mut client = match serenity::all::ClientBuilder::new_with_http(http, intents)
        .event_handler(Handler(discord.clone()))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the Discord client");
            return;
        }
    };
    let http = client.http.clone();
    let shards = client.shard_manager.clone();
    let gateway = tokio::spawn(async move {
        if let Err(e) = client.start().await {
            tracing::error!(error = %e, "the Discord gateway stopped");
        }
    });
    loop {
        if let Err(e) = deliver_replies(&discord, &http, &retry).await {
            tracing::error!(error = %e, "Discord outbox: store error");
        }
        if let Err(e) = room::deliver_cards(&discord, &http, &retry).await {
            tracing::error!(error = %e, "agents' room: store error");
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = shutdown.changed() => {}
        }
    }
    shards.shutdown_all().await;
    let _ = gateway.await;
}
