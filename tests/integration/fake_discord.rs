//! A fake Discord on loopback for the Discord channel's tests: an HTTP API that serenity reaches
//! through its proxy setting (`HttpBuilder::new(token).proxy(fake.http_base)
//! .ratelimiter_disabled(true)`) and a gateway (websocket) whose URL the HTTP API hands out.
//!
//! The HTTP side records every call (method, path below `/api/v10`, JSON body, status it got)
//! and answers the routes a support bot uses with objects serenity 0.12.5 deserializes: messages
//! (created, edited, fetched), threads started from messages (one per message, as Discord),
//! channels, guild and global commands, interaction callbacks, follow-ups and the original
//! response. Any other route answers 404 `Unknown route` and stays in [`FakeDiscord::calls`].
//!
//! The gateway speaks the real protocol for one shard: HELLO, IDENTIFY → READY, RESUME →
//! RESUMED, heartbeat → ACK, dispatches with a session sequence number. Like Discord it echoes
//! the bot's own messages as `MESSAGE_CREATE` / `MESSAGE_UPDATE` (intent `GUILD_MESSAGES`) and
//! announces threads it starts with `THREAD_CREATE` (intent `GUILDS`). It sends no
//! `GUILD_CREATE`: the cache then knows no guild, and serenity's permission checks pass.
//!
//! serenity 0.12.5 turns an event with a missing required field into an unknown event without a
//! word, so the tests at the end deserialize every payload this fake builds into serenity's own
//! types, and drive a real serenity client against it.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// The heartbeat interval HELLO announces: short, so that heartbeats and their ACKs happen in
/// every test that runs a client for more than a second.
pub const HEARTBEAT_INTERVAL_MS: u64 = 1000;

/// Milliseconds from the Unix epoch to Discord's (2015-01-01), the base of snowflakes.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Gateway intents the fake looks at (the bits of IDENTIFY's `intents`).
const INTENT_GUILDS: u64 = 1 << 0;
const INTENT_GUILD_MESSAGES: u64 = 1 << 9;

/// The message of the catch-all 404.
const UNKNOWN_ROUTE: &str = "404: Not Found (Unknown route)";

/// Permissions given in interactions (`member.permissions`, `app_permissions`): everything.
const ALL_PERMISSIONS: &str = "2251799813685247";

/// One HTTP call the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    /// `GET`, `POST`, `PATCH`, `PUT`, `DELETE`.
    pub method: String,
    /// The path below `/api/v10`, without the query: `/channels/5/messages`.
    pub path: String,
    /// The query string, if any (`with_response=true`).
    pub query: Option<String>,
    /// The JSON body; for a multipart body its `payload_json`; `Null` when empty; a string when
    /// the body is not JSON.
    pub body: Value,
    /// The file names of a multipart body's file parts.
    pub files: Vec<String>,
    /// The `Authorization` header (`Bot <token>`).
    pub authorization: Option<String>,
    /// The status the fake answered.
    pub status: u16,
    /// Whether the fake serves no such route (it answered 404 `Unknown route`).
    pub unknown_route: bool,
}

impl Call {
    /// Whether this call is `method path` (path below `/api/v10`).
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }

    /// The body's `content` (messages, edits), or the `data.content` of an interaction callback.
    pub fn content(&self) -> Option<&str> {
        self.body
            .get("content")
            .or_else(|| self.body.get("data").and_then(|d| d.get("content")))
            .and_then(Value::as_str)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} → {}", self.method, self.path, self.status)?;
        if let Some(query) = &self.query {
            write!(f, " (?{query})")?;
        }
        if !self.body.is_null() {
            write!(f, " {}", self.body)?;
        }
        Ok(())
    }
}

/// The fake: its addresses, the ids of the bot, its application and its guild, and what it saw.
pub struct FakeDiscord {
    /// `http://127.0.0.1:P`, to give serenity as its HTTP proxy.
    pub http_base: String,
    /// `ws://127.0.0.1:P2`, what `GET /gateway` answers.
    pub gateway_url: String,
    pub bot_user_id: u64,
    pub application_id: u64,
    pub guild_id: u64,
    shared: Arc<Shared>,
}

struct Shared {
    bot_user_id: u64,
    application_id: u64,
    guild_id: u64,
    gateway_url: String,
    echo_own_messages: AtomicBool,
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    calls: Vec<Call>,
    last_id: u64,
    /// Channels `GET /channels/{c}` knows: registered ones and threads started here.
    channels: HashMap<u64, Value>,
    threads: HashSet<u64>,
    /// Messages created over HTTP (REST form), by id, for edits and fetches.
    messages: HashMap<u64, Value>,
    guild_commands: Vec<Value>,
    global_commands: Vec<Value>,
    /// Command ids by name, kept across overwrites as Discord does.
    command_ids: HashMap<String, u64>,
    interactions: HashMap<u64, InteractionState>,
    tokens: HashMap<String, u64>,
    // Gateway.
    next_conn: u64,
    conns: HashMap<u64, Conn>,
    session_id: Option<String>,
    seq: u64,
    intents: u64,
    identifies: Vec<Value>,
    resumes: Vec<Value>,
    heartbeats: usize,
    ready_sent: usize,
    resumed_sent: usize,
    completed_at_drop: usize,
    gateway_requests: Vec<String>,
    connections_opened: usize,
}

struct InteractionState {
    token: String,
    channel_id: u64,
    acknowledged: bool,
    original: Option<Value>,
}

struct Conn {
    tx: mpsc::UnboundedSender<Out>,
    /// READY or RESUMED sent on it, and not dropped since: dispatches go there.
    live: bool,
}

enum Out {
    Frame(Value),
    Close(u16, &'static str),
}

impl FakeState {
    /// A fresh snowflake: time-based like Discord's, and always above the last one.
    fn next_id(&mut self) -> u64 {
        let ms = chrono::Utc::now().timestamp_millis() as u64;
        let id = (ms.saturating_sub(DISCORD_EPOCH_MS) << 22).max(self.last_id + 1);
        self.last_id = id;
        id
    }

    fn completed(&self) -> usize {
        self.ready_sent + self.resumed_sent
    }

    /// Sends op 0 `event` to every live connection, with the session's next sequence number.
    fn dispatch(&mut self, event: &str, data: Value) -> usize {
        self.seq += 1;
        let frame = json!({"op": 0, "s": self.seq, "t": event, "d": data});
        let mut sent = 0;
        for conn in self.conns.values().filter(|c| c.live) {
            if conn.tx.send(Out::Frame(frame.clone())).is_ok() {
                sent += 1;
            }
        }
        sent
    }
}

fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

fn id_str(id: u64) -> String {
    id.to_string()
}

/// A user object as Discord sends it (`bot` only when true).
fn user_json(id: u64, name: &str, bot: bool) -> Value {
    let mut user = json!({
        "id": id_str(id),
        "username": name,
        "global_name": if bot { Value::Null } else { json!(name) },
        "discriminator": "0",
        "avatar": null,
        "banner": null,
        "accent_color": null,
        "avatar_decoration_data": null,
        "public_flags": 0,
        "flags": 0,
    });
    if bot {
        user["bot"] = json!(true);
    }
    user
}

/// A guild member without its user (as in `MESSAGE_CREATE.member` and `resolved.members`).
fn partial_member_json(role_ids: &[u64], joined_at: &str) -> Value {
    json!({
        "roles": role_ids.iter().map(|r| id_str(*r)).collect::<Vec<_>>(),
        "nick": null,
        "avatar": null,
        "banner": null,
        "premium_since": null,
        "joined_at": joined_at,
        "deaf": false,
        "mute": false,
        "pending": false,
        "flags": 0,
        "communication_disabled_until": null,
        "unusual_dm_activity_until": null,
    })
}

fn parse_id(segment: &str) -> Option<u64> {
    segment.parse().ok()
}

/// The user and role mentions of a message's content (`<@id>`, `<@!id>`, `<@&id>`).
fn mentions_in(content: &str) -> (Vec<u64>, Vec<u64>) {
    let pattern = regex::Regex::new(r"<@(!|&)?(\d+)>").expect("mention pattern");
    let (mut users, mut roles) = (Vec::new(), Vec::new());
    for caps in pattern.captures_iter(content) {
        let Ok(id) = caps[2].parse::<u64>() else {
            continue;
        };
        let list = if caps.get(1).is_some_and(|m| m.as_str() == "&") {
            &mut roles
        } else {
            &mut users
        };
        if !list.contains(&id) {
            list.push(id);
        }
    }
    (users, roles)
}

/// The body of a request: JSON, the `payload_json` part of a multipart form (with the file
/// names of its other parts), or the raw text.
fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> (Value, Vec<String>) {
    if bytes.is_empty() {
        return (Value::Null, Vec::new());
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(boundary) = content_type
        .strip_prefix("multipart/form-data")
        .and_then(|rest| rest.split("boundary=").nth(1))
    {
        let boundary = boundary.trim_matches('"');
        let text = String::from_utf8_lossy(bytes);
        let mut payload = Value::Null;
        let mut files = Vec::new();
        for part in text.split(&format!("--{boundary}")) {
            let Some((head, body)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let body = body.strip_suffix("\r\n").unwrap_or(body);
            let param = |key: &str| {
                head.split(';')
                    .map(str::trim)
                    .find_map(|p| p.strip_prefix(&format!("{key}=\"")))
                    .and_then(|p| p.split('"').next())
                    .map(str::to_owned)
            };
            if let Some(filename) = param("filename") {
                files.push(filename);
            } else if param("name").as_deref() == Some("payload_json") {
                payload = serde_json::from_str(body).unwrap_or_else(|_| json!(body));
            }
        }
        return (payload, files);
    }
    match serde_json::from_slice(bytes) {
        Ok(value) => (value, Vec::new()),
        Err(_) => (
            Value::String(String::from_utf8_lossy(bytes).into_owned()),
            Vec::new(),
        ),
    }
}

fn error(code: u64, message: &str) -> Value {
    json!({"code": code, "message": message})
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bot_user(&self) -> Value {
        let mut user = user_json(self.bot_user_id, "Firstline", true);
        user["verified"] = json!(true);
        user["mfa_enabled"] = json!(false);
        user["email"] = Value::Null;
        user["locale"] = json!("en-US");
        user
    }

    /// A message as the REST API returns it (no `guild_id`, no `member`).
    fn rest_message(
        &self,
        id: u64,
        channel_id: u64,
        author: Value,
        kind: u8,
        body: &Value,
    ) -> Value {
        let content = body.get("content").and_then(Value::as_str).unwrap_or("");
        let (user_mentions, role_mentions) = mentions_in(content);
        let mut message = json!({
            "id": id_str(id),
            "channel_id": id_str(channel_id),
            "author": author,
            "content": content,
            "timestamp": now_timestamp(),
            "edited_timestamp": null,
            "tts": body.get("tts").and_then(Value::as_bool).unwrap_or(false),
            "mention_everyone": false,
            "mentions": user_mentions
                .iter()
                .map(|u| user_json(*u, &format!("user{u}"), *u == self.bot_user_id))
                .collect::<Vec<_>>(),
            "mention_roles": role_mentions.iter().map(|r| id_str(*r)).collect::<Vec<_>>(),
            "attachments": [],
            "embeds": body.get("embeds").cloned().unwrap_or_else(|| json!([])),
            "components": body.get("components").cloned().unwrap_or_else(|| json!([])),
            "pinned": false,
            "type": kind,
            "flags": body.get("flags").cloned().unwrap_or_else(|| json!(0)),
        });
        if let Some(reference) = body.get("message_reference")
            && let Some(message_id) = reference.get("message_id")
        {
            message["message_reference"] = json!({
                "type": 0,
                "message_id": message_id,
                "channel_id": reference
                    .get("channel_id")
                    .cloned()
                    .unwrap_or_else(|| json!(id_str(channel_id))),
                "guild_id": id_str(self.guild_id),
            });
            message["type"] = json!(19);
        }
        message
    }

    /// The gateway form of a REST message: with `guild_id` and the author's `member`.
    fn gateway_form(&self, rest: &Value, role_ids: &[u64]) -> Value {
        let mut message = rest.clone();
        message["guild_id"] = json!(id_str(self.guild_id));
        message["member"] = partial_member_json(role_ids, &now_timestamp());
        message
    }

    fn thread_json(&self, id: u64, parent_id: u64, body: &Value) -> Value {
        let now = now_timestamp();
        json!({
            "id": id_str(id),
            "type": 11,
            "guild_id": id_str(self.guild_id),
            "parent_id": id_str(parent_id),
            "owner_id": id_str(self.bot_user_id),
            "name": body.get("name").and_then(Value::as_str).unwrap_or("thread"),
            "last_message_id": null,
            "rate_limit_per_user": body.get("rate_limit_per_user").cloned().unwrap_or(json!(0)),
            "flags": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "thread_metadata": {
                "archived": false,
                "auto_archive_duration":
                    body.get("auto_archive_duration").cloned().unwrap_or(json!(4320)),
                "archive_timestamp": now,
                "locked": false,
                "create_timestamp": now,
            },
        })
    }

    fn channel_json(&self, id: u64, kind: u8) -> Value {
        json!({
            "id": id_str(id),
            "type": kind,
            "guild_id": id_str(self.guild_id),
            "name": format!("channel-{id}"),
            "position": 0,
            "permission_overwrites": [],
            "parent_id": null,
            "topic": null,
            "nsfw": false,
            "last_message_id": null,
            "rate_limit_per_user": 0,
            "flags": 0,
        })
    }

    fn command_json(&self, state: &mut FakeState, guild: Option<u64>, body: &Value) -> Value {
        let name = body.get("name").and_then(Value::as_str).unwrap_or("");
        let id = match state.command_ids.get(name) {
            Some(id) => *id,
            None => {
                let id = state.next_id();
                state.command_ids.insert(name.to_owned(), id);
                id
            }
        };
        let version = state.next_id();
        json!({
            "id": id_str(id),
            "application_id": id_str(self.application_id),
            "version": id_str(version),
            "type": body.get("type").cloned().unwrap_or(json!(1)),
            "name": name,
            "name_localizations": body.get("name_localizations").cloned().unwrap_or(Value::Null),
            "description": body.get("description").cloned().unwrap_or(json!("")),
            "description_localizations":
                body.get("description_localizations").cloned().unwrap_or(Value::Null),
            "guild_id": guild.map(id_str),
            "options": body.get("options").cloned().unwrap_or(json!([])),
            "default_member_permissions":
                body.get("default_member_permissions").cloned().unwrap_or(Value::Null),
            "dm_permission": guild.is_none(),
            "contexts": body.get("contexts").cloned().unwrap_or(Value::Null),
            "integration_types": body.get("integration_types").cloned().unwrap_or(json!([0])),
            "nsfw": body.get("nsfw").cloned().unwrap_or(json!(false)),
        })
    }

    /// Answers one HTTP call: (status, JSON body or none for 204).
    fn route(&self, state: &mut FakeState, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let unknown = (404, error(0, UNKNOWN_ROUTE));
        match (method, segments.as_slice()) {
            ("GET", ["gateway"]) => (200, json!({"url": self.gateway_url})),
            ("GET", ["gateway", "bot"]) => (
                200,
                json!({
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000, "remaining": 999, "reset_after": 86_400_000,
                        "max_concurrency": 1,
                    },
                }),
            ),
            ("GET", ["users", "@me"]) => (200, self.bot_user()),
            ("GET", ["oauth2", "applications", "@me"]) => (
                200,
                json!({
                    "id": id_str(self.application_id),
                    "name": "Firstline",
                    "icon": null,
                    "description": "",
                    "bot_public": false,
                    "bot_require_code_grant": false,
                    "verify_key": "0".repeat(64),
                    "owner": user_json(self.bot_user_id + 1, "owner", false),
                    "team": null,
                    "flags": 0,
                    "bot": self.bot_user(),
                }),
            ),
            ("GET", ["channels", c]) => match parse_id(c).and_then(|c| state.channels.get(&c)) {
                Some(channel) => (200, channel.clone()),
                None => (404, error(10003, "Unknown Channel")),
            },
            ("POST", ["channels", c, "typing"]) if parse_id(c).is_some() => (204, Value::Null),
            ("PUT", ["channels", c, "messages", m, "reactions", _, "@me"])
                if parse_id(c).is_some() && parse_id(m).is_some() =>
            {
                (204, Value::Null)
            }
            ("POST", ["channels", c, "messages"]) => {
                let Some(channel_id) = parse_id(c) else {
                    return unknown;
                };
                let id = state.next_id();
                let message = self.rest_message(id, channel_id, self.bot_user(), 0, body);
                state.messages.insert(id, message.clone());
                if let Some(thread) = state.channels.get_mut(&channel_id)
                    && state.threads.contains(&channel_id)
                {
                    for key in ["message_count", "total_message_sent"] {
                        thread[key] = json!(thread[key].as_u64().unwrap_or(0) + 1);
                    }
                    thread["last_message_id"] = json!(id_str(id));
                }
                if self.echo_own_messages.load(Ordering::SeqCst)
                    && state.intents & INTENT_GUILD_MESSAGES != 0
                {
                    state.dispatch("MESSAGE_CREATE", self.gateway_form(&message, &[]));
                }
                (200, message)
            }
            ("GET", ["channels", c, "messages", m]) => {
                match parse_id(m).and_then(|m| state.messages.get(&m)) {
                    Some(message) if message["channel_id"] == json!(c) => (200, message.clone()),
                    _ => (404, error(10008, "Unknown Message")),
                }
            }
            ("PATCH", ["channels", c, "messages", m]) => {
                let Some(message) = parse_id(m).and_then(|m| state.messages.get_mut(&m)) else {
                    return (404, error(10008, "Unknown Message"));
                };
                if message["channel_id"] != json!(c) {
                    return (404, error(10008, "Unknown Message"));
                }
                if message["author"]["id"] != json!(id_str(self.bot_user_id)) {
                    return (
                        403,
                        error(50005, "Cannot edit a message authored by another user"),
                    );
                }
                for key in ["content", "embeds", "components", "flags"] {
                    if let Some(value) = body.get(key) {
                        message[key] = value.clone();
                    }
                }
                message["edited_timestamp"] = json!(now_timestamp());
                let message = message.clone();
                if self.echo_own_messages.load(Ordering::SeqCst)
                    && state.intents & INTENT_GUILD_MESSAGES != 0
                {
                    state.dispatch("MESSAGE_UPDATE", self.gateway_form(&message, &[]));
                }
                (200, message)
            }
            ("POST", ["channels", c, "messages", m, "threads"]) => {
                let (Some(channel_id), Some(message_id)) = (parse_id(c), parse_id(m)) else {
                    return unknown;
                };
                if state.threads.contains(&channel_id) {
                    return (
                        400,
                        error(50024, "Cannot execute action on this channel type"),
                    );
                }
                if state
                    .messages
                    .get(&message_id)
                    .is_some_and(|m| m["channel_id"] != json!(c))
                {
                    return (404, error(10008, "Unknown Message"));
                }
                if state.threads.contains(&message_id) {
                    return (
                        400,
                        error(160004, "A thread has already been created for this message"),
                    );
                }
                let thread = self.thread_json(message_id, channel_id, body);
                state.threads.insert(message_id);
                state.channels.insert(message_id, thread.clone());
                if state.intents & INTENT_GUILDS != 0 {
                    let mut event = thread.clone();
                    event["newly_created"] = json!(true);
                    state.dispatch("THREAD_CREATE", event);
                }
                (201, thread)
            }
            (_, ["applications", a, ..]) if parse_id(a) != Some(self.application_id) => {
                (404, error(10002, "Unknown Application"))
            }
            (_, ["applications", _, "guilds", g, "commands"])
                if parse_id(g) != Some(self.guild_id) =>
            {
                (404, error(10004, "Unknown Guild"))
            }
            ("PUT", ["applications", _, "guilds", _, "commands"]) => {
                let Some(list) = body.as_array() else {
                    return (400, error(50035, "Invalid Form Body"));
                };
                let commands: Vec<Value> = list
                    .iter()
                    .map(|c| self.command_json(state, Some(self.guild_id), c))
                    .collect();
                state.guild_commands = commands.clone();
                (200, json!(commands))
            }
            ("PUT", ["applications", _, "commands"]) => {
                let Some(list) = body.as_array() else {
                    return (400, error(50035, "Invalid Form Body"));
                };
                let commands: Vec<Value> = list
                    .iter()
                    .map(|c| self.command_json(state, None, c))
                    .collect();
                state.global_commands = commands.clone();
                (200, json!(commands))
            }
            ("POST", ["applications", _, "guilds", _, "commands"]) => {
                let command = self.command_json(state, Some(self.guild_id), body);
                state
                    .guild_commands
                    .retain(|c| c["name"] != command["name"]);
                state.guild_commands.push(command.clone());
                (201, command)
            }
            ("POST", ["applications", _, "commands"]) => {
                let command = self.command_json(state, None, body);
                state
                    .global_commands
                    .retain(|c| c["name"] != command["name"]);
                state.global_commands.push(command.clone());
                (201, command)
            }
            ("GET", ["applications", _, "guilds", _, "commands"]) => {
                (200, json!(state.guild_commands))
            }
            ("GET", ["applications", _, "commands"]) => (200, json!(state.global_commands)),
            ("POST", ["interactions", i, token, "callback"]) => {
                let Some(interaction) = parse_id(i).and_then(|i| state.interactions.get_mut(&i))
                else {
                    return (404, error(10062, "Unknown interaction"));
                };
                if interaction.token != *token {
                    return (401, error(50027, "Invalid Webhook Token"));
                }
                if interaction.acknowledged {
                    return (
                        400,
                        error(40060, "Interaction has already been acknowledged."),
                    );
                }
                interaction.acknowledged = true;
                let channel_id = interaction.channel_id;
                let kind = body.get("type").and_then(Value::as_u64).unwrap_or(0);
                if kind == 4 || kind == 5 {
                    let data = body.get("data").cloned().unwrap_or_else(|| json!({}));
                    let id = state.next_id();
                    let mut original =
                        self.rest_message(id, channel_id, self.bot_user(), 20, &data);
                    original["webhook_id"] = json!(id_str(self.application_id));
                    original["application_id"] = json!(id_str(self.application_id));
                    if kind == 5 {
                        original["flags"] = json!(128);
                    }
                    let interaction = state
                        .interactions
                        .get_mut(&parse_id(i).unwrap_or_default())
                        .expect("interaction just seen");
                    interaction.original = Some(original);
                }
                (204, Value::Null)
            }
            (_, ["webhooks", a, ..]) if parse_id(a) != Some(self.application_id) => {
                (404, error(10015, "Unknown Webhook"))
            }
            (_, ["webhooks", _, token, ..]) if !state.tokens.contains_key(*token) => {
                (401, error(50027, "Invalid Webhook Token"))
            }
            ("GET" | "PATCH" | "DELETE", ["webhooks", _, token, "messages", "@original"]) => {
                let id = state.tokens[*token];
                let interaction = state
                    .interactions
                    .get_mut(&id)
                    .expect("token of an interaction");
                let Some(original) = interaction.original.as_mut() else {
                    return (404, error(10008, "Unknown Message"));
                };
                match method {
                    "GET" => (200, original.clone()),
                    "PATCH" => {
                        for key in ["content", "embeds", "components"] {
                            if let Some(value) = body.get(key) {
                                original[key] = value.clone();
                            }
                        }
                        original["flags"] = json!(0);
                        original["edited_timestamp"] = json!(now_timestamp());
                        (200, original.clone())
                    }
                    _ => {
                        interaction.original = None;
                        (204, Value::Null)
                    }
                }
            }
            ("POST", ["webhooks", _, token]) => {
                let channel_id = state.interactions[&state.tokens[*token]].channel_id;
                let id = state.next_id();
                let mut message = self.rest_message(id, channel_id, self.bot_user(), 0, body);
                message["webhook_id"] = json!(id_str(self.application_id));
                message["application_id"] = json!(id_str(self.application_id));
                state.messages.insert(id, message.clone());
                (200, message)
            }
            ("PATCH", ["webhooks", _, _, "messages", m]) => {
                match parse_id(m).and_then(|m| state.messages.get_mut(&m)) {
                    Some(message) => {
                        for key in ["content", "embeds", "components"] {
                            if let Some(value) = body.get(key) {
                                message[key] = value.clone();
                            }
                        }
                        message["edited_timestamp"] = json!(now_timestamp());
                        (200, message.clone())
                    }
                    None => (404, error(10008, "Unknown Message")),
                }
            }
            _ => unknown,
        }
    }

    fn hello_frame() -> Value {
        json!({
            "op": 10, "s": null, "t": null,
            "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS, "_trace": ["fake-discord"]},
        })
    }

    /// READY, the first dispatch (sequence 1) of a session.
    fn ready_frame(&self, session_id: &str, shard: Value) -> Value {
        json!({
            "op": 0, "s": 1, "t": "READY",
            "d": {
                "v": 10,
                "user": self.bot_user(),
                "guilds": [{"id": id_str(self.guild_id), "unavailable": true}],
                "session_id": session_id,
                "resume_gateway_url": self.gateway_url,
                "session_type": "normal",
                "shard": shard,
                "application": {"id": id_str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "geo_ordered_rtc_regions": [],
                "guild_join_requests": [],
                "user_settings": {},
                "_trace": ["fake-discord"],
            },
        })
    }

    fn resumed_frame(seq: u64) -> Value {
        json!({"op": 0, "s": seq, "t": "RESUMED", "d": {"_trace": ["fake-discord"]}})
    }

    /// Handles one frame from a gateway client.
    fn on_client_frame(&self, conn_id: u64, text: &str) {
        let mut state = self.state();
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            if let Some(conn) = state.conns.get(&conn_id) {
                let _ = conn
                    .tx
                    .send(Out::Close(4002, "Error while decoding payload."));
            }
            return;
        };
        let d = frame.get("d").cloned().unwrap_or(Value::Null);
        let Some(tx) = state.conns.get(&conn_id).map(|c| c.tx.clone()) else {
            return;
        };
        match frame.get("op").and_then(Value::as_u64) {
            Some(1) => {
                state.heartbeats += 1;
                let _ = tx.send(Out::Frame(json!({"op": 11})));
            }
            Some(2) => {
                state.identifies.push(d.clone());
                state.intents = d.get("intents").and_then(Value::as_u64).unwrap_or(0);
                let session_id = format!("session-{}", state.next_id());
                state.session_id = Some(session_id.clone());
                state.seq = 1;
                let shard = d.get("shard").cloned().unwrap_or(json!([0, 1]));
                let ready = self.ready_frame(&session_id, shard);
                let _ = tx.send(Out::Frame(ready));
                state.ready_sent += 1;
                if let Some(conn) = state.conns.get_mut(&conn_id) {
                    conn.live = true;
                }
            }
            Some(6) => {
                state.resumes.push(d.clone());
                let known = d.get("session_id").and_then(Value::as_str)
                    == state.session_id.as_deref()
                    && state.session_id.is_some();
                if known {
                    state.seq += 1;
                    let resumed = Self::resumed_frame(state.seq);
                    let _ = tx.send(Out::Frame(resumed));
                    state.resumed_sent += 1;
                    if let Some(conn) = state.conns.get_mut(&conn_id) {
                        conn.live = true;
                    }
                } else {
                    let _ = tx.send(Out::Frame(json!({"op": 9, "d": false})));
                }
            }
            // Presence updates, member requests, voice: accepted and ignored.
            Some(3 | 4 | 8 | 31) => {}
            _ => {
                let _ = tx.send(Out::Close(4001, "Unknown opcode."));
            }
        }
    }
}

async fn http_handler(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let (body, files) = parse_body(&headers, &bytes);
    let full_path = uri.path();
    let path = full_path.strip_prefix("/api/v10").unwrap_or(full_path);
    let mut state = shared.state();
    let (status, answer) = if full_path.starts_with("/api/v10/") {
        shared.route(&mut state, method.as_str(), path, &body)
    } else {
        (404, error(0, UNKNOWN_ROUTE))
    };
    let unknown_route = status == 404 && answer["message"] == UNKNOWN_ROUTE;
    state.calls.push(Call {
        method: method.to_string(),
        path: path.to_owned(),
        query: uri.query().map(str::to_owned),
        body,
        files,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        status,
        unknown_route,
    });
    drop(state);
    let status = StatusCode::from_u16(status).expect("valid status");
    if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, axum::Json(answer)).into_response()
    }
}

// tungstenite's handshake callback returns its `Result<Response, ErrorResponse>` by value.
#[allow(clippy::result_large_err)]
async fn serve_gateway(shared: Arc<Shared>, stream: TcpStream) {
    let mut request_uri = String::new();
    let accepted =
        tokio_tungstenite::accept_hdr_async(stream, |req: &Request, resp: WsResponse| {
            request_uri = req.uri().to_string();
            Ok(resp)
        })
        .await;
    let Ok(ws) = accepted else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn_id = {
        let mut state = shared.state();
        state.gateway_requests.push(request_uri);
        state.connections_opened += 1;
        state.next_conn += 1;
        let id = state.next_conn;
        let _ = tx.send(Out::Frame(Shared::hello_frame()));
        state.conns.insert(id, Conn { tx, live: false });
        id
    };
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => shared.on_client_frame(conn_id, &text),
                Some(Ok(WsMessage::Close(_))) => {
                    let _ = sink.flush().await;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            out = rx.recv() => match out {
                Some(Out::Frame(frame)) => {
                    if sink.send(WsMessage::Text(frame.to_string())).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close(code, reason)) => {
                    let frame = CloseFrame { code: code.into(), reason: reason.into() };
                    let _ = sink.send(WsMessage::Close(Some(frame))).await;
                    break;
                }
                None => break,
            },
        }
    }
    shared.state().conns.remove(&conn_id);
}

impl FakeDiscord {
    /// Starts the HTTP API and the gateway on loopback (ports picked by the system).
    pub async fn start() -> FakeDiscord {
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Discord HTTP port");
        let gateway_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Discord gateway port");
        let http_base = format!("http://{}", http_listener.local_addr().unwrap());
        let gateway_url = format!("ws://{}", gateway_listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            bot_user_id: 1_200_000_000_000_000_001,
            application_id: 1_200_000_000_000_000_002,
            guild_id: 1_200_000_000_000_000_003,
            gateway_url: gateway_url.clone(),
            echo_own_messages: AtomicBool::new(true),
            state: Mutex::new(FakeState::default()),
        });
        let app = axum::Router::new()
            .fallback(http_handler)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move { axum::serve(http_listener, app).await });
        let gateway_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Ok((stream, _)) = gateway_listener.accept().await {
                tokio::spawn(serve_gateway(Arc::clone(&gateway_shared), stream));
            }
        });
        FakeDiscord {
            http_base,
            gateway_url,
            bot_user_id: shared.bot_user_id,
            application_id: shared.application_id,
            guild_id: shared.guild_id,
            shared,
        }
    }

    /// Every HTTP call received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.state().calls.clone()
    }

    /// The calls answered 404 `Unknown route`: what the fake does not serve.
    pub fn unknown_route_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.unknown_route)
            .collect()
    }

    fn describe_calls(&self) -> String {
        let calls = self.calls();
        if calls.is_empty() {
            return "  (no HTTP call)".to_owned();
        }
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| format!("  {i}: {c}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for the first call that `pred` accepts (earlier calls count); panics after
    /// `timeout` listing every call so far.
    pub async fn wait_for_call(
        &self,
        what: &str,
        pred: impl Fn(&Call) -> bool,
        timeout: Duration,
    ) -> Call {
        self.wait_for_calls(what, 1, pred, timeout).await.remove(0)
    }

    /// Waits until `count` calls that `pred` accepts have been made; returns the first `count`.
    pub async fn wait_for_calls(
        &self,
        what: &str,
        count: usize,
        pred: impl Fn(&Call) -> bool,
        timeout: Duration,
    ) -> Vec<Call> {
        let deadline = Instant::now() + timeout;
        loop {
            let matching: Vec<Call> = self
                .shared
                .state()
                .calls
                .iter()
                .filter(|c| pred(c))
                .take(count)
                .cloned()
                .collect();
            if matching.len() == count {
                return matching;
            }
            if Instant::now() >= deadline {
                panic!(
                    "fake Discord: no {count} call(s) {what} within {timeout:?} ({} seen); calls:\n{}",
                    matching.len(),
                    self.describe_calls()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&FakeState) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.shared.state()) {
                return;
            }
            if Instant::now() >= deadline {
                let (identifies, resumes, opened) = {
                    let s = self.shared.state();
                    (s.identifies.len(), s.resumes.len(), s.connections_opened)
                };
                panic!(
                    "fake Discord: {what} not within {timeout:?} (gateway connections {opened}, \
                     IDENTIFY {identifies}, RESUME {resumes}); HTTP calls:\n{}",
                    self.describe_calls()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until a client identified and was sent READY.
    pub async fn wait_ready(&self, timeout: Duration) {
        self.wait_until("READY after IDENTIFY", timeout, |s| s.ready_sent > 0)
            .await;
    }

    /// Sends op 0 `event` with `data` and the session's next sequence number to every live
    /// shard (READY or RESUMED sent). Waits up to 10 s for one; panics if there is none. A
    /// `MESSAGE_CREATE`'s message is kept, so that the REST API knows it afterwards (`GET` it,
    /// start a thread from it only in its channel, refuse to edit it: 403 code 50005).
    pub async fn dispatch(&self, event: &str, data: Value) {
        self.wait_until(
            &format!("a live gateway connection to dispatch {event}"),
            Duration::from_secs(10),
            |s| s.conns.values().any(|c| c.live),
        )
        .await;
        let mut state = self.shared.state();
        // Messages sent over the gateway exist for the REST API too (fetch, thread from it).
        if event == "MESSAGE_CREATE"
            && let Some(id) = data["id"].as_str().and_then(parse_id)
        {
            let mut rest = data.clone();
            if let Some(fields) = rest.as_object_mut() {
                fields.remove("guild_id");
                fields.remove("member");
            }
            state.messages.insert(id, rest);
        }
        let sent = state.dispatch(event, data);
        drop(state);
        assert!(
            sent > 0,
            "fake Discord: {event} reached no gateway connection"
        );
    }

    /// Closes every gateway connection with close code 4000 (serenity then resumes: a new
    /// connection, RESUME, RESUMED). [`FakeDiscord::wait_reconnected`] waits for that.
    pub async fn drop_connection(&self) {
        self.close_all(4000, "Unknown error.");
    }

    /// Sends op 9 INVALID_SESSION (`resumable` false: serenity identifies anew, about 5 s later,
    /// since its shard queue waits 5 s between identifies).
    pub async fn invalidate_session(&self, resumable: bool) {
        let mut state = self.shared.state();
        state.completed_at_drop = state.completed();
        if !resumable {
            state.session_id = None;
        }
        for conn in state.conns.values_mut() {
            conn.live = false;
            let _ = conn.tx.send(Out::Frame(json!({"op": 9, "d": resumable})));
        }
    }

    fn close_all(&self, code: u16, reason: &'static str) {
        let mut state = self.shared.state();
        state.completed_at_drop = state.completed();
        for conn in state.conns.values_mut() {
            conn.live = false;
            let _ = conn.tx.send(Out::Close(code, reason));
        }
    }

    /// Waits until a gateway connection completed (RESUMED after RESUME, or READY after
    /// IDENTIFY) after the last [`FakeDiscord::drop_connection`] or
    /// [`FakeDiscord::invalidate_session`].
    pub async fn wait_reconnected(&self, timeout: Duration) {
        self.wait_until("a reconnection (RESUMED or READY)", timeout, |s| {
            s.completed() > s.completed_at_drop && s.conns.values().any(|c| c.live)
        })
        .await;
    }

    pub fn identify_count(&self) -> usize {
        self.shared.state().identifies.len()
    }

    pub fn resume_count(&self) -> usize {
        self.shared.state().resumes.len()
    }

    /// The heartbeats (op 1) received, each answered with op 11.
    pub fn heartbeat_count(&self) -> usize {
        self.shared.state().heartbeats
    }

    /// The `d` of every IDENTIFY (token `Bot …`, intents, properties, shard).
    pub fn identifies(&self) -> Vec<Value> {
        self.shared.state().identifies.clone()
    }

    /// The request URIs of the gateway connections (`/?v=10`).
    pub fn gateway_requests(&self) -> Vec<String> {
        self.shared.state().gateway_requests.clone()
    }

    /// Whether the bot's own messages come back over the gateway as Discord does (default on).
    pub fn set_echo_own_messages(&self, echo: bool) {
        self.shared.echo_own_messages.store(echo, Ordering::SeqCst);
    }

    /// Makes `GET /channels/{id}` answer a channel of type `kind` (0 text) in the guild.
    pub fn register_channel(&self, id: u64, kind: u8) {
        let channel = self.shared.channel_json(id, kind);
        self.shared.state().channels.insert(id, channel);
    }

    /// A thread a person started under `parent` (a forum post, or "Create Thread" on a
    /// channel): registered, so that `GET /channels/{id}` answers it.
    pub fn register_thread(&self, id: u64, parent: u64, owner: u64, name: &str) -> Value {
        let mut thread = self.shared.thread_json(id, parent, &json!({"name": name}));
        thread["owner_id"] = json!(id_str(owner));
        self.shared.state().channels.insert(id, thread.clone());
        thread
    }

    /// The thread started from message `message_id`, if one was (its id is the message's).
    pub fn thread(&self, message_id: u64) -> Option<Value> {
        let state = self.shared.state();
        state
            .threads
            .contains(&message_id)
            .then(|| state.channels[&message_id].clone())
    }

    /// A message the REST API knows (sent by the bot, or dispatched in `MESSAGE_CREATE`), in
    /// REST form, as last edited.
    pub fn known_message(&self, id: u64) -> Option<Value> {
        self.shared.state().messages.get(&id).cloned()
    }

    /// The guild commands as last registered.
    pub fn guild_commands(&self) -> Vec<Value> {
        self.shared.state().guild_commands.clone()
    }

    /// The token of interaction `id`, as in its callback path `/interactions/{id}/{token}/callback`.
    pub fn interaction_token(id: u64) -> String {
        format!("interaction-token-{id}")
    }

    /// The original response of interaction `id` (after a callback of type 4 or 5).
    pub fn interaction_original(&self, id: u64) -> Option<Value> {
        self.shared
            .state()
            .interactions
            .get(&id)
            .and_then(|i| i.original.clone())
    }

    /// A guild message as `MESSAGE_CREATE` carries it, from a member with no role.
    pub fn message(
        &self,
        id: u64,
        channel_id: u64,
        author_id: u64,
        author_bot: bool,
        content: &str,
    ) -> Value {
        self.message_with_roles(id, channel_id, author_id, author_bot, content, &[])
    }

    /// A guild message as `MESSAGE_CREATE` carries it, from a member with these roles.
    pub fn message_with_roles(
        &self,
        id: u64,
        channel_id: u64,
        author_id: u64,
        author_bot: bool,
        content: &str,
        role_ids: &[u64],
    ) -> Value {
        let author = user_json(author_id, &format!("user{author_id}"), author_bot);
        let rest =
            self.shared
                .rest_message(id, channel_id, author, 0, &json!({"content": content}));
        self.shared.gateway_form(&rest, role_ids)
    }

    /// A slash command (`type` 2) in the guild, from a member with these roles. `options` is the
    /// array of `{name, type, value}`. Registers the interaction so that its callback, original
    /// response and follow-ups are served; its token is [`FakeDiscord::interaction_token`].
    pub fn command_interaction(
        &self,
        id: u64,
        name: &str,
        options: Value,
        user_id: u64,
        role_ids: &[u64],
        channel_id: u64,
    ) -> Value {
        let token = Self::interaction_token(id);
        let mut state = self.shared.state();
        let command_id = match state.command_ids.get(name) {
            Some(id) => *id,
            None => {
                let id = state.next_id();
                state.command_ids.insert(name.to_owned(), id);
                id
            }
        };
        state.interactions.insert(
            id,
            InteractionState {
                token: token.clone(),
                channel_id,
                acknowledged: false,
                original: None,
            },
        );
        state.tokens.insert(token.clone(), id);
        let channel = state.channels.get(&channel_id).cloned();
        drop(state);

        let joined_at = now_timestamp();
        let mut member = partial_member_json(role_ids, &joined_at);
        member["user"] = user_json(user_id, &format!("user{user_id}"), false);
        member["permissions"] = json!(ALL_PERMISSIONS);

        // Users named in options come resolved, as from Discord.
        let mut resolved_users = serde_json::Map::new();
        let mut resolved_members = serde_json::Map::new();
        for option in options.as_array().into_iter().flatten() {
            if option.get("type").and_then(Value::as_u64) == Some(6)
                && let Some(uid) = option.get("value").and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
            {
                resolved_users.insert(
                    id_str(uid),
                    user_json(uid, &format!("user{uid}"), uid == self.bot_user_id),
                );
                let mut m = partial_member_json(&[], &joined_at);
                m["permissions"] = json!(ALL_PERMISSIONS);
                resolved_members.insert(id_str(uid), m);
            }
        }
        let mut data = json!({
            "id": id_str(command_id),
            "name": name,
            "type": 1,
            "options": options,
            "guild_id": id_str(self.guild_id),
        });
        if !resolved_users.is_empty() {
            data["resolved"] = json!({"users": resolved_users, "members": resolved_members});
        }
        let channel = match channel {
            Some(c) => json!({
                "id": c["id"], "type": c["type"], "name": c["name"], "guild_id": c["guild_id"],
                "parent_id": c["parent_id"], "permissions": ALL_PERMISSIONS,
                "flags": 0, "position": c.get("position").cloned().unwrap_or(json!(0)),
            }),
            None => json!({
                "id": id_str(channel_id), "type": 0, "name": format!("channel-{channel_id}"),
                "guild_id": id_str(self.guild_id), "parent_id": null,
                "permissions": ALL_PERMISSIONS, "flags": 0, "position": 0,
            }),
        };
        json!({
            "id": id_str(id),
            "application_id": id_str(self.application_id),
            "type": 2,
            "data": data,
            "guild_id": id_str(self.guild_id),
            "guild": {"id": id_str(self.guild_id), "locale": "en-US", "features": []},
            "channel_id": id_str(channel_id),
            "channel": channel,
            "member": member,
            "token": token,
            "version": 1,
            "app_permissions": ALL_PERMISSIONS,
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": id_str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": 26_214_400,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The fake against serenity itself: every payload deserializes into serenity's types (and
    //! into a known gateway event, not `Event::Unknown`), every route answers what serenity's
    //! typed calls parse, and a real client identifies, answers, resumes and re-identifies.

    use std::sync::atomic::AtomicUsize;

    use serenity::all::{
        AutoArchiveDuration, Channel, ChannelId, Command, CommandDataOptionValue,
        CommandOptionType, Context, CreateAttachment, CreateCommand, CreateCommandOption,
        CreateEmbed, CreateEmbedFooter, CreateInteractionResponse,
        CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateMessage,
        CreateThread, CurrentApplicationInfo, CurrentUser, EditInteractionResponse, EditMessage,
        EventHandler, GatewayIntents, GuildChannel, GuildId, Interaction, InteractionId, Message,
        MessageId, Ready,
    };
    use serenity::model::event::{Event, GatewayEvent};
    use serenity::model::gateway::{BotGateway, Gateway};

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);
    const SUPPORT_CHANNEL: u64 = 1_300_000_000_000_000_010;
    const AGENT_ROLE: u64 = 1_300_000_000_000_000_020;
    const CUSTOMER: u64 = 1_300_000_000_000_000_030;

    /// Deserializes a gateway frame the way the shard does, failing on `Event::Unknown`.
    fn gateway_event(frame: &Value) -> GatewayEvent {
        let event: GatewayEvent = serde_json::from_value(frame.clone())
            .unwrap_or_else(|e| panic!("not a gateway event: {e}\n{frame:#}"));
        if let GatewayEvent::Dispatch(_, Event::Unknown(unknown)) = &event {
            panic!(
                "serenity does not recognize this {} (a required field is missing?)",
                unknown.kind
            );
        }
        event
    }

    fn dispatch_frame(event: &str, data: &Value) -> Value {
        json!({"op": 0, "s": 7, "t": event, "d": data})
    }

    /// Deserializes with the path of the failing field in the message.
    fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> T {
        serde_path_to_error::deserialize(value.clone()).unwrap_or_else(|e| {
            panic!(
                "{} does not deserialize: {e}\n{value:#}",
                std::any::type_name::<T>()
            )
        })
    }

    #[tokio::test]
    async fn message_payload_is_a_serenity_message_create() {
        let fake = FakeDiscord::start().await;
        let content = format!(
            "<@{}> checkout is down, ping <@&{AGENT_ROLE}>",
            fake.bot_user_id
        );
        let payload = fake.message_with_roles(
            42,
            SUPPORT_CHANNEL,
            CUSTOMER,
            false,
            &content,
            &[AGENT_ROLE],
        );
        let message: Message = typed(&payload);
        assert_eq!(message.id.get(), 42);
        assert_eq!(message.channel_id.get(), SUPPORT_CHANNEL);
        assert_eq!(message.guild_id, Some(GuildId::new(fake.guild_id)));
        assert_eq!(message.author.id.get(), CUSTOMER);
        assert!(!message.author.bot);
        assert_eq!(message.content, content);
        let member = message.member.as_ref().expect("member");
        assert_eq!(
            member.roles.iter().map(|r| r.get()).collect::<Vec<_>>(),
            [AGENT_ROLE]
        );
        assert_eq!(message.mentions.len(), 1);
        assert_eq!(message.mentions[0].id.get(), fake.bot_user_id);
        assert!(message.mentions[0].bot);
        assert_eq!(message.mention_roles[0].get(), AGENT_ROLE);

        let frame = dispatch_frame("MESSAGE_CREATE", &payload);
        match gateway_event(&frame) {
            GatewayEvent::Dispatch(7, Event::MessageCreate(e)) => {
                assert_eq!(e.message.content, content)
            }
            other => panic!("not MESSAGE_CREATE: {other:?}"),
        }

        let bot: Message = typed(&fake.message(43, SUPPORT_CHANNEL, 99, true, "beep"));
        assert!(bot.author.bot);
        assert!(bot.member.expect("member").roles.is_empty());
    }

    #[tokio::test]
    async fn command_interaction_payload_is_a_serenity_command() {
        let fake = FakeDiscord::start().await;
        let options = json!([
            {"name": "ticket", "type": 3, "value": "T-17"},
            {"name": "level", "type": 4, "value": 2},
            {"name": "assignee", "type": 6, "value": CUSTOMER.to_string()},
            {"name": "urgent", "type": 5, "value": true},
        ]);
        let payload = fake.command_interaction(
            77,
            "override",
            options,
            CUSTOMER,
            &[AGENT_ROLE],
            SUPPORT_CHANNEL,
        );
        let interaction: Interaction = typed(&payload);
        let Interaction::Command(command) = &interaction else {
            panic!("not a command: {interaction:?}");
        };
        assert_eq!(command.id.get(), 77);
        assert_eq!(command.application_id.get(), fake.application_id);
        assert_eq!(command.token, FakeDiscord::interaction_token(77));
        assert_eq!(command.channel_id.get(), SUPPORT_CHANNEL);
        assert_eq!(command.guild_id, Some(GuildId::new(fake.guild_id)));
        assert_eq!(command.user.id.get(), CUSTOMER, "user filled from member");
        let member = command.member.as_ref().expect("member");
        assert_eq!(
            member.roles.iter().map(|r| r.get()).collect::<Vec<_>>(),
            [AGENT_ROLE]
        );
        assert_eq!(command.data.name, "override");
        let values: Vec<_> = command.data.options.iter().map(|o| &o.value).collect();
        assert_eq!(values[0], &CommandDataOptionValue::String("T-17".into()));
        assert_eq!(values[1], &CommandDataOptionValue::Integer(2));
        assert_eq!(
            values[2],
            &CommandDataOptionValue::User(serenity::all::UserId::new(CUSTOMER))
        );
        assert_eq!(values[3], &CommandDataOptionValue::Boolean(true));
        assert!(
            command
                .data
                .resolved
                .users
                .contains_key(&serenity::all::UserId::new(CUSTOMER))
        );

        let frame = dispatch_frame("INTERACTION_CREATE", &payload);
        match gateway_event(&frame) {
            GatewayEvent::Dispatch(_, Event::InteractionCreate(e)) => {
                assert!(matches!(e.interaction, Interaction::Command(_)))
            }
            other => panic!("not INTERACTION_CREATE: {other:?}"),
        }
    }

    /// Why the checks above matter: serenity 0.12.5 reads a known event with a missing
    /// required field as `Event::Unknown`, and the handler never hears of it.
    #[tokio::test]
    async fn a_missing_required_field_makes_an_unknown_event() {
        let fake = FakeDiscord::start().await;
        let mut interaction =
            fake.command_interaction(5, "ticket", json!([]), CUSTOMER, &[], SUPPORT_CHANNEL);
        interaction
            .as_object_mut()
            .unwrap()
            .remove("attachment_size_limit");
        let frame = dispatch_frame("INTERACTION_CREATE", &interaction);
        let event: GatewayEvent = serde_json::from_value(frame).expect("still a gateway event");
        assert!(
            matches!(event, GatewayEvent::Dispatch(_, Event::Unknown(_))),
            "{event:?}"
        );
        let mut message = fake.message(6, SUPPORT_CHANNEL, CUSTOMER, false, "hi");
        message.as_object_mut().unwrap().remove("mention_roles");
        let frame = dispatch_frame("MESSAGE_CREATE", &message);
        let event: GatewayEvent = serde_json::from_value(frame).expect("still a gateway event");
        assert!(
            matches!(event, GatewayEvent::Dispatch(_, Event::Unknown(_))),
            "{event:?}"
        );
    }

    #[tokio::test]
    async fn gateway_frames_are_what_the_shard_expects() {
        let fake = FakeDiscord::start().await;
        let shared = &fake.shared;
        assert!(matches!(
            gateway_event(&Shared::hello_frame()),
            GatewayEvent::Hello(HEARTBEAT_INTERVAL_MS)
        ));
        let ready = shared.ready_frame("session-1", json!([0, 1]));
        let typed_ready: Ready = typed(&ready["d"]);
        assert_eq!(typed_ready.user.id.get(), fake.bot_user_id);
        assert!(typed_ready.user.bot);
        assert_eq!(typed_ready.application.id.get(), fake.application_id);
        assert_eq!(typed_ready.guilds[0].id.get(), fake.guild_id);
        assert_eq!(typed_ready.session_id, "session-1");
        match gateway_event(&ready) {
            GatewayEvent::Dispatch(1, Event::Ready(e)) => {
                assert_eq!(e.ready.resume_gateway_url, fake.gateway_url)
            }
            other => panic!("not READY: {other:?}"),
        }
        assert!(matches!(
            gateway_event(&Shared::resumed_frame(5)),
            GatewayEvent::Dispatch(5, Event::Resumed(_))
        ));
        assert!(matches!(
            gateway_event(&json!({"op": 11})),
            GatewayEvent::HeartbeatAck
        ));
        assert!(matches!(
            gateway_event(&json!({"op": 9, "d": false})),
            GatewayEvent::InvalidateSession(false)
        ));
    }

    #[tokio::test]
    async fn channel_thread_and_rest_message_payloads_deserialize() {
        let fake = FakeDiscord::start().await;
        let shared = &fake.shared;

        let thread = shared.thread_json(42, SUPPORT_CHANNEL, &json!({"name": "T-1: checkout"}));
        let guild_thread: GuildChannel = typed(&thread);
        assert_eq!(guild_thread.id.get(), 42);
        assert_eq!(guild_thread.kind, serenity::all::ChannelType::PublicThread);
        assert_eq!(
            guild_thread.parent_id,
            Some(ChannelId::new(SUPPORT_CHANNEL))
        );
        assert_eq!(guild_thread.guild_id.get(), fake.guild_id);
        assert_eq!(guild_thread.name, "T-1: checkout");
        let metadata = guild_thread.thread_metadata.expect("thread_metadata");
        assert!(!metadata.archived && !metadata.locked);
        assert!(matches!(typed::<Channel>(&thread), Channel::Guild(_)));
        assert!(matches!(
            gateway_event(&dispatch_frame("THREAD_CREATE", &thread)),
            GatewayEvent::Dispatch(_, Event::ThreadCreate(_))
        ));

        let text = shared.channel_json(SUPPORT_CHANNEL, 0);
        match typed::<Channel>(&text) {
            Channel::Guild(c) => assert_eq!(c.kind, serenity::all::ChannelType::Text),
            other => panic!("not a guild channel: {other:?}"),
        }

        // What serenity's builders send comes back as a Message.
        let body = serde_json::to_value(
            CreateMessage::new()
                .content("Severity 2 proposed")
                .embed(
                    CreateEmbed::new()
                        .title("T-1")
                        .description("Checkout fails")
                        .colour(0xE67E22)
                        .field("Severity", "2", true)
                        .footer(CreateEmbedFooter::new("firstline"))
                        .timestamp(serenity::all::Timestamp::now()),
                )
                .reference_message((ChannelId::new(SUPPORT_CHANNEL), MessageId::new(42))),
        )
        .unwrap();
        let rest = shared.rest_message(50, SUPPORT_CHANNEL, shared.bot_user(), 0, &body);
        let message: Message = typed(&rest);
        assert_eq!(message.content, "Severity 2 proposed");
        assert_eq!(message.embeds[0].title.as_deref(), Some("T-1"));
        assert_eq!(message.embeds[0].fields[0].value, "2");
        assert_eq!(
            message
                .message_reference
                .as_ref()
                .and_then(|r| r.message_id),
            Some(MessageId::new(42))
        );
        assert_eq!(message.guild_id, None, "REST messages carry no guild_id");
        let gateway = shared.gateway_form(&rest, &[]);
        for event in ["MESSAGE_CREATE", "MESSAGE_UPDATE"] {
            match gateway_event(&dispatch_frame(event, &gateway)) {
                GatewayEvent::Dispatch(_, Event::MessageCreate(_) | Event::MessageUpdate(_)) => {}
                other => panic!("not {event}: {other:?}"),
            }
        }

        let mut state = FakeState::default();
        let create = serde_json::to_value(
            CreateCommand::new("override")
                .description("Set the severity")
                .default_member_permissions(serenity::all::Permissions::MANAGE_MESSAGES)
                .add_option(
                    CreateCommandOption::new(CommandOptionType::Integer, "level", "1 to 4")
                        .required(true)
                        .min_int_value(1)
                        .max_int_value(4),
                )
                .add_option(
                    CreateCommandOption::new(CommandOptionType::String, "why", "Reason")
                        .add_string_choice("customer", "customer"),
                ),
        )
        .unwrap();
        let command: Command =
            typed(&shared.command_json(&mut state, Some(fake.guild_id), &create));
        assert_eq!(command.name, "override");
        assert_eq!(command.application_id.get(), fake.application_id);
        assert_eq!(command.options.len(), 2);
        assert!(command.options[0].required);
        assert_eq!(command.options[1].choices[0].name, "customer");
    }

    fn proxied_http(fake: &FakeDiscord) -> serenity::http::Http {
        serenity::http::HttpBuilder::new("fake-token")
            .proxy(fake.http_base.clone())
            .ratelimiter_disabled(true)
            .application_id(serenity::all::ApplicationId::new(fake.application_id))
            .build()
    }

    #[tokio::test]
    async fn every_route_answers_what_serenity_parses() {
        let fake = FakeDiscord::start().await;
        let http = proxied_http(&fake);
        let channel = ChannelId::new(SUPPORT_CHANNEL);
        let guild = GuildId::new(fake.guild_id);

        let gateway: Gateway = http.get_gateway().await.expect("GET /gateway");
        assert_eq!(gateway.url, fake.gateway_url);
        let bot_gateway: BotGateway = http.get_bot_gateway().await.expect("GET /gateway/bot");
        assert_eq!(bot_gateway.shards, 1);
        let me: CurrentUser = http.get_current_user().await.expect("GET /users/@me");
        assert_eq!(me.id.get(), fake.bot_user_id);
        let app: CurrentApplicationInfo = http
            .get_current_application_info()
            .await
            .expect("GET application");
        assert_eq!(app.id.get(), fake.application_id);

        // Channels: unknown until registered.
        let err = http
            .get_channel(channel)
            .await
            .expect_err("unknown channel");
        assert!(format!("{err:?}").contains("10003"), "{err:?}");
        fake.register_channel(SUPPORT_CHANNEL, 0);
        assert!(
            matches!(http.get_channel(channel).await.expect("GET channel"), Channel::Guild(c) if c.name == format!("channel-{SUPPORT_CHANNEL}"))
        );

        // Messages: send (JSON and multipart), edit, fetch.
        let sent = http
            .send_message(channel, vec![], &CreateMessage::new().content("hello"))
            .await
            .expect("POST message");
        assert_eq!(sent.channel_id, channel);
        assert_eq!(sent.author.id.get(), fake.bot_user_id);
        assert_eq!(sent.content, "hello");
        let with_file = http
            .send_message(
                channel,
                vec![CreateAttachment::bytes(b"log".as_slice(), "log.txt")],
                &CreateMessage::new().content("see the log"),
            )
            .await
            .expect("POST multipart message");
        assert_eq!(with_file.content, "see the log");
        let edited = http
            .edit_message(
                channel,
                sent.id,
                &EditMessage::new().content("hello again"),
                vec![],
            )
            .await
            .expect("PATCH message");
        assert_eq!(edited.content, "hello again");
        assert!(edited.edited_timestamp.is_some());
        let fetched = http
            .get_message(channel, sent.id)
            .await
            .expect("GET message");
        assert_eq!(fetched.content, "hello again");
        http.broadcast_typing(channel).await.expect("typing");
        http.create_reaction(channel, sent.id, &'👀'.into())
            .await
            .expect("reaction");

        // Threads: one per message, none inside a thread.
        let thread = http
            .create_thread_from_message(
                channel,
                MessageId::new(500),
                &CreateThread::new("T-1").auto_archive_duration(AutoArchiveDuration::OneDay),
                None,
            )
            .await
            .expect("POST thread");
        assert_eq!(thread.id.get(), 500);
        assert_eq!(thread.parent_id, Some(channel));
        assert_eq!(
            thread.thread_metadata.unwrap().auto_archive_duration,
            AutoArchiveDuration::OneDay
        );
        let again = http
            .create_thread_from_message(
                channel,
                MessageId::new(500),
                &CreateThread::new("T-1"),
                None,
            )
            .await
            .expect_err("a second thread from one message");
        match &again {
            serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(e)) => {
                assert_eq!(e.status_code.as_u16(), 400);
                assert_eq!(e.error.code, 160004);
            }
            other => panic!("not a Discord error: {other:?}"),
        }
        let nested = http
            .create_thread_from_message(
                ChannelId::new(500),
                MessageId::new(501),
                &CreateThread::new("nested"),
                None,
            )
            .await
            .expect_err("a thread in a thread");
        assert!(format!("{nested:?}").contains("50024"), "{nested:?}");
        match http
            .get_channel(ChannelId::new(500))
            .await
            .expect("GET thread")
        {
            Channel::Guild(c) => assert_eq!(c.kind, serenity::all::ChannelType::PublicThread),
            other => panic!("{other:?}"),
        }
        http.send_message(
            ChannelId::new(500),
            vec![],
            &CreateMessage::new().content("in thread"),
        )
        .await
        .expect("POST in thread");
        assert_eq!(fake.thread(500).unwrap()["message_count"], 1);

        // Commands: bulk overwrite keeps ids per name, single create, list.
        let commands = vec![
            CreateCommand::new("ticket").description("Show a ticket"),
            CreateCommand::new("override")
                .description("Set the severity")
                .add_option(
                    CreateCommandOption::new(CommandOptionType::Integer, "level", "1 to 4")
                        .required(true),
                ),
        ];
        let first = http
            .create_guild_commands(guild, &commands)
            .await
            .expect("PUT commands");
        assert_eq!(first.len(), 2);
        assert_eq!(first[1].options[0].name, "level");
        let second = http
            .create_guild_commands(guild, &commands)
            .await
            .expect("PUT again");
        assert_eq!(first[0].id, second[0].id);
        let single = http
            .create_guild_command(guild, &CreateCommand::new("stats").description("Stats"))
            .await
            .expect("POST command");
        assert_eq!(single.guild_id, Some(guild));
        assert_eq!(
            http.get_guild_commands(guild)
                .await
                .expect("GET commands")
                .len(),
            3
        );
        let global = http
            .create_global_commands(&vec![CreateCommand::new("help").description("Help")])
            .await
            .expect("PUT global commands");
        assert_eq!(global[0].guild_id, None);
        let wrong_guild = http
            .create_guild_commands(GuildId::new(1), &commands)
            .await
            .expect_err("another guild");
        assert!(
            format!("{wrong_guild:?}").contains("10004"),
            "{wrong_guild:?}"
        );

        // Interactions: callback once, original response, follow-up.
        let payload =
            fake.command_interaction(900, "ticket", json!([]), CUSTOMER, &[], SUPPORT_CHANNEL);
        let token = payload["token"].as_str().unwrap().to_owned();
        let id = InteractionId::new(900);
        let response = CreateInteractionResponse::Message(
            CreateInteractionResponseMessage::new().content("Looking…"),
        );
        http.create_interaction_response(id, &token, &response, vec![])
            .await
            .expect("callback");
        let twice = http
            .create_interaction_response(id, &token, &response, vec![])
            .await
            .expect_err("a second callback");
        assert!(format!("{twice:?}").contains("40060"), "{twice:?}");
        let original = http
            .get_original_interaction_response(&token)
            .await
            .expect("GET @original");
        assert_eq!(original.content, "Looking…");
        let original = http
            .edit_original_interaction_response(
                &token,
                &EditInteractionResponse::new().content("T-1: severity 2"),
                vec![],
            )
            .await
            .expect("PATCH @original");
        assert_eq!(original.content, "T-1: severity 2");
        let followup = http
            .create_followup_message(
                &token,
                &CreateInteractionResponseFollowup::new().content("More"),
                vec![],
            )
            .await
            .expect("POST follow-up");
        assert_eq!(followup.content, "More");
        let unknown = http
            .create_interaction_response(InteractionId::new(901), "nope", &response, vec![])
            .await
            .expect_err("unknown interaction");
        assert!(format!("{unknown:?}").contains("10062"), "{unknown:?}");

        // Unknown routes answer 404 and are listed.
        let err = http.get_guild_roles(guild).await.expect_err("not served");
        assert!(format!("{err:?}").contains("404"), "{err:?}");
        let unknown = fake.unknown_route_calls();
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert_eq!(unknown[0].path, format!("/guilds/{}/roles", fake.guild_id));

        // Every call is recorded with its body and the bot token.
        let calls = fake.calls();
        assert!(
            calls
                .iter()
                .all(|c| c.authorization.as_deref() == Some("Bot fake-token"))
        );
        let multipart = calls
            .iter()
            .find(|c| c.method == "POST" && c.files == ["log.txt"])
            .expect("multipart call");
        assert_eq!(multipart.content(), Some("see the log"));
        assert_eq!(
            calls
                .iter()
                .find(|c| c.path.ends_with("/callback"))
                .unwrap()
                .content(),
            Some("Looking…")
        );
    }

    /// What the test client's handler saw and did.
    #[derive(Default)]
    struct Seen {
        errors: Mutex<Vec<String>>,
        own_echoes: AtomicUsize,
        messages: AtomicUsize,
        threads: AtomicUsize,
    }

    struct Handler(Arc<Seen>);

    impl Handler {
        fn fail(&self, what: &str, err: impl fmt::Debug) {
            self.0
                .errors
                .lock()
                .unwrap()
                .push(format!("{what}: {err:?}"));
        }
    }

    #[serenity::async_trait]
    impl EventHandler for Handler {
        async fn ready(&self, ctx: Context, ready: Ready) {
            let guild = ready.guilds[0].id;
            let commands = vec![
                CreateCommand::new("ping")
                    .description("Answers pong")
                    .add_option(CreateCommandOption::new(
                        CommandOptionType::String,
                        "text",
                        "What to echo",
                    )),
            ];
            if let Err(e) = guild.set_commands(&ctx.http, commands).await {
                self.fail("set_commands", e);
            }
        }

        async fn message(&self, ctx: Context, msg: Message) {
            if msg.author.bot {
                self.0.own_echoes.fetch_add(1, Ordering::SeqCst);
                return;
            }
            self.0.messages.fetch_add(1, Ordering::SeqCst);
            if msg.content == "thread" {
                match msg
                    .channel_id
                    .create_thread_from_message(&ctx, msg.id, CreateThread::new("support"))
                    .await
                {
                    Ok(thread) => {
                        if let Err(e) = thread.id.say(&ctx, "in the thread").await {
                            self.fail("say in thread", e);
                        }
                    }
                    Err(e) => self.fail("create_thread_from_message", e),
                }
                return;
            }
            match msg.channel_id.say(&ctx, "pong").await {
                Ok(mut reply) => {
                    let edit = EditMessage::new().content(format!("pong: {}", msg.content));
                    if let Err(e) = reply.edit(&ctx, edit).await {
                        self.fail("edit", e);
                    }
                }
                Err(e) => self.fail("say", e),
            }
        }

        async fn thread_create(&self, _ctx: Context, _thread: GuildChannel) {
            self.0.threads.fetch_add(1, Ordering::SeqCst);
        }

        async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
            let Interaction::Command(command) = interaction else {
                return;
            };
            let text = match command.data.options.first().map(|o| &o.value) {
                Some(CommandDataOptionValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let roles = command.member.as_ref().map_or(0, |m| m.roles.len());
            let response = CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new()
                    .content(format!("pong {text} ({roles} roles)"))
                    .ephemeral(true),
            );
            if let Err(e) = command.create_response(&ctx, response).await {
                self.fail("create_response", e);
                return;
            }
            let followup = CreateInteractionResponseFollowup::new().content("follow-up");
            if let Err(e) = command.create_followup(&ctx, followup).await {
                self.fail("create_followup", e);
            }
        }
    }

    async fn start_client(fake: &FakeDiscord) -> (Arc<Seen>, tokio::task::JoinHandle<()>) {
        let seen = Arc::new(Seen::default());
        let http = serenity::http::HttpBuilder::new("fake-token")
            .proxy(fake.http_base.clone())
            .ratelimiter_disabled(true)
            .build();
        let intents = GatewayIntents::GUILDS
            | GatewayIntents::GUILD_MESSAGES
            | GatewayIntents::MESSAGE_CONTENT;
        let mut client = serenity::all::ClientBuilder::new_with_http(http, intents)
            .event_handler(Handler(Arc::clone(&seen)))
            .await
            .expect("build the serenity client");
        let task = tokio::spawn(async move {
            let _ = client.start().await;
        });
        (seen, task)
    }

    fn pong_for(content: &'static str) -> impl Fn(&Call) -> bool {
        move |c: &Call| {
            c.method == "PATCH"
                && c.path
                    .starts_with(&format!("/channels/{SUPPORT_CHANNEL}/messages/"))
                && c.content() == Some(&format!("pong: {content}"))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_serenity_client_talks_to_the_fake_and_resumes() {
        let fake = FakeDiscord::start().await;
        fake.register_channel(SUPPORT_CHANNEL, 0);
        let started = Instant::now();
        let (seen, client) = start_client(&fake).await;
        fake.wait_ready(WAIT).await;
        let to_ready = started.elapsed();
        assert_eq!(fake.identify_count(), 1);
        let identify = &fake.identifies()[0];
        assert_eq!(identify["token"], "Bot fake-token");
        assert_eq!(
            identify["intents"].as_u64(),
            Some((1 << 0) | (1 << 9) | (1 << 15))
        );
        assert_eq!(fake.gateway_requests(), ["/?v=10"]);
        fake.wait_for_call(
            "PUT guild commands",
            |c| c.method == "PUT" && c.path.ends_with("/commands"),
            WAIT,
        )
        .await;

        // A message: say, then edit; the bot's own message comes back and is ignored.
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(1001, SUPPORT_CHANNEL, CUSTOMER, false, "hello"),
        )
        .await;
        let said = fake
            .wait_for_call(
                "POST pong",
                |c| {
                    c.is("POST", &format!("/channels/{SUPPORT_CHANNEL}/messages"))
                        && c.content() == Some("pong")
                },
                WAIT,
            )
            .await;
        assert_eq!(said.status, 200);
        fake.wait_for_call("PATCH pong: hello", pong_for("hello"), WAIT)
            .await;

        // A slash command: callback, then a follow-up through the application's webhook.
        let interaction = fake.command_interaction(
            2001,
            "ping",
            json!([{"name": "text", "type": 3, "value": "hi"}]),
            CUSTOMER,
            &[AGENT_ROLE],
            SUPPORT_CHANNEL,
        );
        fake.dispatch("INTERACTION_CREATE", interaction).await;
        let callback = fake
            .wait_for_call(
                "interaction callback",
                |c| {
                    c.path
                        == format!(
                            "/interactions/2001/{}/callback",
                            FakeDiscord::interaction_token(2001)
                        )
                },
                WAIT,
            )
            .await;
        assert_eq!(callback.status, 204);
        assert_eq!(callback.body["type"], 4);
        assert_eq!(callback.content(), Some("pong hi (1 roles)"));
        assert_eq!(callback.body["data"]["flags"], 64, "ephemeral");
        let followup = fake
            .wait_for_call(
                "follow-up",
                |c| c.method == "POST" && c.path.starts_with("/webhooks/"),
                WAIT,
            )
            .await;
        assert_eq!(
            followup.path,
            format!(
                "/webhooks/{}/{}",
                fake.application_id,
                FakeDiscord::interaction_token(2001)
            )
        );

        // A thread from a message, announced over the gateway.
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(1002, SUPPORT_CHANNEL, CUSTOMER, false, "thread"),
        )
        .await;
        fake.wait_for_call(
            "a message in the new thread",
            |c| c.is("POST", "/channels/1002/messages"),
            WAIT,
        )
        .await;
        assert!(fake.thread(1002).is_some());

        // Drop the socket: serenity resumes, and messages flow again.
        let dropped = Instant::now();
        fake.drop_connection().await;
        fake.wait_reconnected(WAIT).await;
        let to_resume = dropped.elapsed();
        assert_eq!(fake.resume_count(), 1);
        assert_eq!(fake.identify_count(), 1, "resumed, not identified anew");
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(1003, SUPPORT_CHANNEL, CUSTOMER, false, "after resume"),
        )
        .await;
        fake.wait_for_call("PATCH pong: after resume", pong_for("after resume"), WAIT)
            .await;

        // Heartbeats are answered, so the shard never gives up on the connection.
        let deadline = Instant::now() + Duration::from_secs(5);
        while fake.heartbeat_count() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(fake.heartbeat_count() > 0, "no heartbeat");
        assert_eq!(fake.resume_count(), 1, "no reconnection after heartbeats");
        let deadline = Instant::now() + WAIT;
        while (seen.own_echoes.load(Ordering::SeqCst) < 3
            || seen.threads.load(Ordering::SeqCst) < 1)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            seen.own_echoes.load(Ordering::SeqCst) >= 3,
            "own messages echoed"
        );
        assert_eq!(
            seen.threads.load(Ordering::SeqCst),
            1,
            "THREAD_CREATE handled"
        );
        assert_eq!(seen.messages.load(Ordering::SeqCst), 3);
        assert!(
            seen.errors.lock().unwrap().is_empty(),
            "{:?}",
            seen.errors.lock().unwrap()
        );
        assert!(
            fake.unknown_route_calls().is_empty(),
            "{:?}",
            fake.unknown_route_calls()
        );

        // Dispatched messages exist for the REST API: fetched, not editable by the bot, and a
        // thread starts from one only in its own channel.
        let http = proxied_http(&fake);
        let customer = http
            .get_message(ChannelId::new(SUPPORT_CHANNEL), MessageId::new(1001))
            .await
            .expect("GET a dispatched message");
        assert_eq!(customer.content, "hello");
        let edit = http
            .edit_message(
                ChannelId::new(SUPPORT_CHANNEL),
                MessageId::new(1001),
                &EditMessage::new().content("x"),
                vec![],
            )
            .await
            .expect_err("edit a customer's message");
        assert!(format!("{edit:?}").contains("50005"), "{edit:?}");
        let elsewhere = http
            .create_thread_from_message(
                ChannelId::new(7),
                MessageId::new(1001),
                &CreateThread::new("x"),
                None,
            )
            .await
            .expect_err("thread from a message of another channel");
        assert!(format!("{elsewhere:?}").contains("10008"), "{elsewhere:?}");
        eprintln!(
            "fake Discord: client start → READY {to_ready:?}; drop → RESUMED {to_resume:?}; \
             {} HTTP calls, {} heartbeats",
            fake.calls().len(),
            fake.heartbeat_count()
        );
        client.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invalid_session_makes_serenity_identify_anew() {
        let fake = FakeDiscord::start().await;
        let (seen, client) = start_client(&fake).await;
        fake.wait_ready(WAIT).await;
        let invalidated = Instant::now();
        fake.invalidate_session(false).await;
        fake.wait_reconnected(Duration::from_secs(15)).await;
        let to_ready = invalidated.elapsed();
        assert_eq!(fake.identify_count(), 2);
        fake.dispatch(
            "MESSAGE_CREATE",
            fake.message(1101, SUPPORT_CHANNEL, CUSTOMER, false, "again"),
        )
        .await;
        fake.wait_for_call("PATCH pong: again", pong_for("again"), WAIT)
            .await;
        assert!(seen.errors.lock().unwrap().is_empty());
        eprintln!("fake Discord: op 9 → READY again {to_ready:?}");
        client.abort();
    }
}
