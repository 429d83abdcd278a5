//! The HTTP channel: the API for ticket systems (`/v1/...`), the agents' queue page (`/`),
//! `/healthz`, `/metrics`, `/openapi.json`, and the outbound webhooks.

pub mod auth;
pub mod openapi;
pub mod page;
pub mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::input;
use crate::intake::{Inbound, Intake, OverrideError, Received};
use crate::store::{Store, TicketFilter};
use crate::triage;
use auth::{Caller, Scope, Tokens};

/// The channel's name in the store.
pub const CHANNEL: &str = "http";

/// Largest page of `GET /v1/tickets`.
const MAX_PER_PAGE: usize = 200;

/// What every handler shares.
pub struct HttpState {
    pub intake: Arc<Intake>,
    pub tokens: Tokens,
    /// Key of the HMAC signatures on `POST /v1/messages`.
    pub inbound_secret: Option<Vec<u8>>,
    pub max_body_bytes: usize,
}

impl HttpState {
    fn store(&self) -> &Store {
        &self.intake.store
    }

    /// The caller of a request, or the refusal. With no tokens configured everyone is an
    /// agent named "anonymous" (only allowed on loopback; see `App::build`).
    fn caller(&self, headers: &HeaderMap, needed: Scope) -> Result<Caller, ApiError> {
        if self.tokens.is_empty() {
            return Ok(Caller {
                name: "anonymous".into(),
                scope: Scope::Agent,
            });
        }
        let presented = bearer(headers).or_else(|| cookie_token(headers));
        let Some(presented) = presented else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (Authorization: Bearer <token>)",
            ));
        };
        let Some(caller) = self.tokens.caller(&presented) else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unknown token"));
        };
        if caller.scope < needed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token {:?} has read scope; this needs an agent token",
                    caller.name
                ),
            ));
        }
        Ok(caller)
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The queue page keeps the token a person typed in a cookie.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix("firstline_token=")
                .map(str::to_string)
        })
}

/// An error as the API answers it: a status and `{"error": ..., "field": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            field: None,
        }
    }

    fn field(field: &str, error: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            field: Some(field.to_string()),
        }
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "HTTP request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error});
        if let Some(f) = self.field {
            body["field"] = Value::String(f);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// The body, or a JSON error (413 over the size limit).
fn body(raw: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    raw.map_err(|r| ApiError::new(r.status(), r.body_text()))
}

/// Parses a JSON body; an error names the field that is wrong.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let message = e.inner().to_string();
        if !e.inner().is_data() {
            // Not JSON at all (syntax, truncated): there is no field to name.
            return ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {message}"));
        }
        let mut path = e.path().to_string();
        if path == "." {
            // Missing and unknown fields are reported on the parent: take the name from the
            // message ("missing field `text`").
            path = message
                .split('`')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_default();
        }
        if path.is_empty() {
            ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {message}"))
        } else {
            ApiError::field(&path, message)
        }
    })
}

/// The routes, with the state and the body limit.
pub fn router(state: Arc<HttpState>) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/", get(page::queue))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/triage", post(triage_text))
        .route("/v1/messages", post(ingest_message))
        .route("/v1/tickets", get(list_tickets))
        .route("/v1/tickets/{id}", get(show_ticket))
        .route("/v1/tickets/{id}/override", post(override_ticket))
        .route("/v1/queue/version", get(queue_version))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves until `shutdown` resolves; in-flight requests are finished.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz(State(s): State<Arc<HttpState>>) -> Response {
    match s.store().queue_version() {
        Ok(_) => axum::Json(json!({"status": "ok", "store": "ok"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "store": e.to_string()})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriageRequest {
    id: Option<Value>,
    text: Option<String>,
    eml: Option<String>,
}

/// The text of a request that carries `text` or `eml` (exactly one).
fn message_text(text: Option<String>, eml: Option<String>) -> Result<String, ApiError> {
    match (text, eml) {
        (Some(t), None) if !t.trim().is_empty() => Ok(t),
        (Some(_), None) => Err(ApiError::field("text", "the text is empty")),
        (None, Some(e)) => {
            input::email_text(e.as_bytes()).map_err(|e| ApiError::field("eml", e.to_string()))
        }
        (Some(_), Some(_)) => Err(ApiError::field("eml", "give either text or eml, not both")),
        (None, None) => Err(ApiError::field("text", "missing field `text` (or `eml`)")),
    }
}

async fn triage_text(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    s.caller(&headers, Scope::Read)?;
    let req: TriageRequest = parse(&body(raw)?)?;
    let text = message_text(req.text, req.eml)?;
    let policy = s.intake.policy.clone();
    let decision = tokio::task::spawn_blocking(move || triage::triage(&policy, &text).1)
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(decision.to_json(req.id)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageRequest {
    /// The other system's conversation id: messages with the same one are one ticket.
    thread: String,
    /// The other system's id for this message (duplicates are recognised by it).
    id: Option<String>,
    from: Option<String>,
    subject: Option<String>,
    text: Option<String>,
    eml: Option<String>,
}

async fn ingest_message(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(raw)?;
    // A helpdesk webhook signs its body; an agent token is accepted too.
    let signed = match (&s.inbound_secret, headers.get("x-firstline-signature")) {
        (Some(secret), Some(sig)) => {
            let ok = sig
                .to_str()
                .is_ok_and(|sig| auth::verify(secret, &bytes, sig));
            if !ok {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "X-Firstline-Signature does not match the body",
                ));
            }
            true
        }
        _ => false,
    };
    if !signed {
        if s.inbound_secret.is_some() && s.tokens.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "X-Firstline-Signature (sha256=HMAC of the body) is required",
            ));
        }
        s.caller(&headers, Scope::Agent)?;
    }
    let req: MessageRequest = parse(&bytes)?;
    if req.thread.trim().is_empty() {
        return Err(ApiError::field("thread", "the thread id is empty"));
    }
    let automatic = req
        .eml
        .as_deref()
        .and_then(|e| crate::channels::email::parse::parse_email(e.as_bytes()).ok())
        .and_then(|p| p.automatic);
    let text = message_text(req.text, req.eml)?;
    let source = format!(
        "http:{}:{}",
        req.thread,
        req.id
            .clone()
            .unwrap_or_else(|| crate::store::fingerprint(text.as_bytes()))
    );
    let inbound = Inbound {
        channel: CHANNEL.to_string(),
        source,
        message_id: req.id.map(|id| format!("{}/{id}", req.thread)),
        sender: req.from,
        subject: req.subject,
        text,
        raw: Some(bytes.to_vec()),
        automatic,
        thread_key: Some(req.thread),
        ..Inbound::default()
    };
    let intake = s.intake.clone();
    let received = tokio::task::spawn_blocking(move || intake.receive(&inbound, |_| Vec::new()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(match received {
        Received::Duplicate { ticket_id } => (
            StatusCode::OK,
            axum::Json(json!({"ticket": ticket_id, "duplicate": true})),
        )
            .into_response(),
        Received::Triaged(r) => (
            if r.new_ticket {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            axum::Json(json!({
                "ticket": r.ticket_id,
                "new_ticket": r.new_ticket,
                "severity": r.severity,
                "previous_severity": r.previous,
                "changed": r.previous.is_some_and(|p| p != r.severity),
                "decision": r.decision.to_json(None),
            })),
        )
            .into_response(),
    })
}

/// Parses the query of `GET /v1/tickets`; an error names the parameter.
fn ticket_filter(q: &HashMap<String, String>) -> Result<(TicketFilter, usize, usize), ApiError> {
    let number = |name: &str, lo: usize, hi: usize, default: usize| -> Result<usize, ApiError> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| {
                    ApiError::field(name, format!("{name} must be a number from {lo} to {hi}"))
                }),
        }
    };
    for key in q.keys() {
        if !matches!(
            key.as_str(),
            "severity" | "label" | "status" | "page" | "per_page"
        ) {
            return Err(ApiError::field(key, format!("unknown parameter {key:?}")));
        }
    }
    let severity = q
        .get("severity")
        .map(|_| number("severity", 1, 4, 0).map(|n| n as u8))
        .transpose()?;
    let page = number("page", 1, usize::MAX >> 1, 1)?;
    let per_page = number("per_page", 1, MAX_PER_PAGE, 50)?;
    Ok((
        TicketFilter {
            severity,
            label: q.get("label").cloned(),
            status: q.get("status").cloned(),
            limit: per_page,
            offset: (page - 1).saturating_mul(per_page),
        },
        page,
        per_page,
    ))
}

async fn list_tickets(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    s.caller(&headers, Scope::Read)?;
    let (filter, page, per_page) = ticket_filter(&q)?;
    let (tickets, total) = s
        .store()
        .tickets_page(&filter)
        .map_err(ApiError::internal)?;
    let pages = (total as usize).div_ceil(per_page);
    Ok(axum::Json(json!({
        "tickets": tickets,
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": pages,
    }))
    .into_response())
}

fn ticket_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .ok()
        .filter(|n: &i64| *n > 0)
        .ok_or_else(|| ApiError::field("id", format!("{raw:?} is not a ticket number")))
}

async fn show_ticket(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.caller(&headers, Scope::Read)?;
    let id = ticket_id(&id)?;
    match s.store().ticket_detail(id).map_err(ApiError::internal)? {
        Some(t) => Ok(axum::Json(t).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no ticket {id}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRequest {
    severity: u8,
    reason: String,
}

async fn override_ticket(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = s.caller(&headers, Scope::Agent)?;
    let id = ticket_id(&id)?;
    let req: OverrideRequest = parse(&body(raw)?)?;
    let recorded = s
        .intake
        .override_severity(id, req.severity, &req.reason, &caller.name, CHANNEL)
        .map_err(|e| match e {
            OverrideError::NoTicket(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            OverrideError::BadLevel(_) => ApiError::field("severity", e.to_string()),
            OverrideError::NoReason => ApiError::field("reason", e.to_string()),
            OverrideError::Store(e) => ApiError::internal(e),
        })?;
    let ticket = s.store().ticket_detail(id).map_err(ApiError::internal)?;
    Ok(axum::Json(json!({"override": recorded, "ticket": ticket})).into_response())
}

async fn queue_version(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.caller(&headers, Scope::Read)?;
    let v = s.store().queue_version().map_err(ApiError::internal)?;
    Ok(axum::Json(json!({"version": v})).into_response())
}

/// Prometheus text: counts from the store (they survive restarts and include `ingest`),
/// the latency histogram from this process.
async fn metrics(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.caller(&headers, Scope::Read)?;
    let store = s.store();
    let mut out = String::new();
    let mut family = |name: &str, help: &str, labels: &[&str], sql: &str| -> Result<(), ApiError> {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        let rows = store.counts(sql).map_err(ApiError::internal)?;
        if rows.is_empty() && labels.is_empty() {
            out.push_str(&format!("{name} 0\n"));
        }
        for (values, n) in rows {
            let pairs: Vec<String> = labels
                .iter()
                .zip(&values)
                .map(|(l, v)| format!("{l}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            if pairs.is_empty() {
                out.push_str(&format!("{name} {n}\n"));
            } else {
                out.push_str(&format!("{name}{{{}}} {n}\n", pairs.join(",")));
            }
        }
        Ok(())
    };
    family(
        "firstline_messages_total",
        "Messages received, by channel.",
        &["channel"],
        "SELECT channel, COUNT(*) FROM messages GROUP BY channel ORDER BY channel",
    )?;
    family(
        "firstline_quarantined_total",
        "Messages quarantined, by channel.",
        &["channel"],
        "SELECT channel, COUNT(*) FROM quarantine GROUP BY channel ORDER BY channel",
    )?;
    family(
        "firstline_decisions_total",
        "Decisions recorded (automatic and overrides), by severity.",
        &["severity"],
        "SELECT severity, COUNT(*) FROM decisions GROUP BY severity ORDER BY severity",
    )?;
    family(
        "firstline_questions_asked_total",
        "Clarifying questions asked in decisions, by question.",
        &["question"],
        "SELECT json_extract(q.value, '$.id'), COUNT(*)
         FROM decisions d, json_each(json_extract(d.decision, '$.questions')) q
         GROUP BY 1 ORDER BY 1",
    )?;
    family(
        "firstline_replies_total",
        "Replies in the outbox, by channel and status (pending, sending, sent, failed).",
        &["channel", "status"],
        "SELECT channel, status, COUNT(*) FROM outbox WHERE kind = 'reply'
         GROUP BY channel, status ORDER BY 1, 2",
    )?;
    family(
        "firstline_webhooks_total",
        "Outbound webhook events, by status.",
        &["status"],
        "SELECT status, COUNT(*) FROM outbox WHERE kind = 'event' GROUP BY status ORDER BY 1",
    )?;
    family(
        "firstline_overrides_total",
        "Agent overrides, by the severity before and after.",
        &["from", "to"],
        "SELECT from_severity, to_severity, COUNT(*) FROM overrides
         GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    out.push_str(&s.intake.latency.render(
        "firstline_processing_seconds",
        "Time from a message's arrival to its stored decision.",
    ));
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
