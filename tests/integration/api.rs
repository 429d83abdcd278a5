//! The HTTP channel against its server on 127.0.0.1:0: status codes, auth scopes, JSON errors
//! that name the field, the size limit, pagination, threading by external id, overrides that
//! re-triage never undoes, metrics, the OpenAPI document, signed webhooks with retry.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use firstline::channels::http::auth::{self, Tokens};
use firstline::channels::http::webhook::Webhook;
use firstline::channels::http::{self as api, HttpState, openapi};
use firstline::intake::{Intake, ReplyLimits};
use firstline::settings::RetrySettings;
use firstline::store::Store;
use firstline::triage::Policy;
use serde_json::{Value, json};

static POLICY: LazyLock<Arc<Policy>> = LazyLock::new(|| Arc::new(Policy::embedded()));

struct Server {
    base: String,
    intake: Arc<Intake>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(tokens: &str, inbound_secret: Option<&str>, events: bool) -> Server {
    let intake = Arc::new(Intake {
        policy: POLICY.clone(),
        store: Arc::new(Store::in_memory().unwrap()),
        limits: ReplyLimits {
            per_thread: 3,
            per_sender: 5,
        },
        events: if events {
            vec![firstline::intake::EVENTS]
        } else {
            Vec::new()
        },
        latency: Default::default(),
    });
    let state = Arc::new(HttpState {
        intake: intake.clone(),
        tokens: Tokens::parse(tokens).unwrap(),
        inbound_secret: inbound_secret.map(|s| s.as_bytes().to_vec()),
        max_body_bytes: 64 * 1024,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, state, async {
        let _ = rx.await;
    }));
    Server {
        base,
        intake,
        stop: Some(tx),
        client: reqwest::Client::new(),
    }
}

impl Server {
    async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn message(&self, thread: &str, id: &str, text: &str) -> (StatusCode, Value) {
        let body = json!({"thread": thread, "id": id, "from": "ann@c.test", "subject": "Help", "text": text});
        self.post("/v1/messages", None, &body.to_string()).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn triage_answers_the_classify_contract_and_errors_name_the_field() {
    let s = start("", None, false).await;
    let (st, v) = s
        .post(
            "/v1/triage",
            None,
            r#"{"id": 7, "text": "prod HN pcs3 down!!! all CTs offline"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["id"], 7);
    assert_eq!(v["severity"], 1);
    for key in [
        "severity_name",
        "rule",
        "rationale",
        "attributes",
        "evidence",
        "questions",
        "labels",
        "confidence",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    let eml = std::fs::read_to_string(super::repo_path("fixtures/email/server-down.eml")).unwrap();
    let (st, v) = s
        .post("/v1/triage", None, &json!({"eml": eml}).to_string())
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["rule"], "s1.server_down");

    let cases = [
        (r#"{"txt": "x"}"#, "txt"),
        (r#"{}"#, "text"),
        (r#"{"text": 5}"#, "text"),
        (r#"{"text": "a", "eml": "b"}"#, "eml"),
        (r#"{"eml": "not an email"}"#, "eml"),
    ];
    for (body, field) in cases {
        let (st, v) = s.post("/v1/triage", None, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let (st, v) = s.post("/v1/triage", None, "{not json").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("JSON"), "{v}");
    let big = json!({"text": "x".repeat(100 * 1024)}).to_string();
    let (st, v) = s.post("/v1/triage", None, &big).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(v["error"].is_string(), "a JSON error: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_scopes_401_403_and_the_agent_is_recorded() {
    let s = start(
        "dash:read:read-token-1,ana:agent:agent-token-1",
        None,
        false,
    )
    .await;
    let (st, v) = s.get("/v1/tickets", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(v["error"].as_str().unwrap().contains("bearer"), "{v}");
    let (st, _) = s.get("/v1/tickets", Some("wrong-token")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s.get("/v1/tickets", Some("read-token-1")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.get("/healthz", None).await;
    assert_eq!(st, StatusCode::OK, "health needs no token");

    let body = json!({"thread": "HD-1", "text": "Our production server is down."}).to_string();
    let (st, _) = s.post("/v1/messages", Some("read-token-1"), &body).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "ingesting needs agent scope");
    let (st, v) = s.post("/v1/messages", Some("agent-token-1"), &body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["ticket"].as_i64().unwrap();

    let over = r#"{"severity": 3, "reason": "customer confirmed a workaround"}"#;
    let path = format!("/v1/tickets/{id}/override");
    let (st, v) = s.post(&path, Some("read-token-1"), over).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(v["error"].as_str().unwrap().contains("agent"), "{v}");
    let (st, v) = s.post(&path, Some("agent-token-1"), over).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["override"]["agent"], "ana");
    assert_eq!(v["ticket"]["severity"], 3);
    assert_eq!(
        v["ticket"]["overrides"][0]["reason"],
        "customer confirmed a workaround"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_thread_by_external_id_and_an_override_survives_re_triage() {
    let s = start("", None, false).await;
    let (st, v) = s
        .message(
            "HD-7",
            "m1",
            "Container 101 does not start since this morning.",
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["ticket"].as_i64().unwrap();
    let first = v["severity"].as_u64().unwrap();
    assert!(first > 1, "{v}");
    let (st, v) = s
        .message(
            "HD-7",
            "m1",
            "Container 101 does not start since this morning.",
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["duplicate"], true, "same id, same message: {v}");
    let (st, v) = s
        .message(
            "HD-7",
            "m2",
            "Now the whole production node is down, all containers offline.",
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"], id, "same thread, same ticket");
    assert_eq!(v["severity"], 1);
    assert_eq!(v["changed"], true);
    assert_eq!(v["previous_severity"], first);

    // An agent lowers it; a later message re-triages but never undoes the override.
    let (st, _) = s
        .post(
            &format!("/v1/tickets/{id}/override"),
            None,
            r#"{"severity": 2, "reason": "only a test node, customer says"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = s
        .message("HD-7", "m3", "Still down, the production node hn3.")
        .await;
    assert_eq!(v["severity"], 2, "the override holds: {v}");
    let (st, t) = s.get(&format!("/v1/tickets/{id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(t["severity"], 2);
    assert_eq!(t["proposed_severity"], 1);
    assert_eq!(t["messages"].as_array().unwrap().len(), 3);
    assert!(t["decisions"].as_array().unwrap().len() >= 4, "{t}");
    assert!(t["attributes"]["server_down"] == true, "{t}");
    assert!(t["evidence"].as_array().is_some_and(|e| !e.is_empty()));

    let (st, v) = s
        .post(
            &format!("/v1/tickets/{id}/override"),
            None,
            r#"{"severity": 9, "reason": "x"}"#,
        )
        .await;
    assert_eq!(
        (st, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("severity"))
    );
    let (st, v) = s
        .post(
            &format!("/v1/tickets/{id}/override"),
            None,
            r#"{"severity": 2, "reason": " "}"#,
        )
        .await;
    assert_eq!(
        (st, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("reason"))
    );
    let (st, _) = s
        .post(
            "/v1/tickets/999/override",
            None,
            r#"{"severity": 2, "reason": "x"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get("/v1/tickets/999", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = s.get("/v1/tickets/abc", None).await;
    assert_eq!(
        (st, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("id"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_webhooks_must_be_signed() {
    let s = start("", Some("inbound-key"), false).await;
    let body = json!({"thread": "Z-1", "text": "The backup of CT 5 failed."}).to_string();
    let (st, v) = s.post("/v1/messages", None, &body).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    let send = |sig: String| {
        s.client
            .post(format!("{}/v1/messages", s.base))
            .header("content-type", "application/json")
            .header("x-firstline-signature", sig)
            .body(body.clone())
            .send()
    };
    let r = send(auth::sign(b"wrong-key", body.as_bytes()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = send(auth::sign(b"inbound-key", body.as_bytes()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queue_is_paginated_filtered_and_ordered_by_severity() {
    let s = start("", None, false).await;
    let texts = [
        "There is a typo in the Power Panel footer, purely cosmetic.",
        "Our production server is down, all customers offline.",
        "The nightly backup of CT 200 failed.",
        "Please add a dark theme to the panel.",
        "Production node down, nothing works, call me at +49 30 1234567.",
    ];
    for (i, t) in texts.iter().enumerate() {
        let (st, _) = s.message(&format!("T-{i}"), "1", t).await;
        assert_eq!(st, StatusCode::CREATED);
    }
    let (st, v) = s.get("/v1/tickets?per_page=2", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (v["total"].clone(), v["pages"].clone()),
        (json!(5), json!(3))
    );
    let first: Vec<u64> = v["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["severity"].as_u64().unwrap())
        .collect();
    assert_eq!(first, [1, 1], "most severe first");
    let (_, v) = s.get("/v1/tickets?per_page=2&page=3", None).await;
    assert_eq!(v["tickets"].as_array().unwrap().len(), 1);
    let (_, v) = s.get("/v1/tickets?per_page=2&page=4", None).await;
    assert!(v["tickets"].as_array().unwrap().is_empty());
    let (_, v) = s.get("/v1/tickets?severity=1", None).await;
    assert_eq!(v["total"], 2);
    let (_, v) = s.get("/v1/tickets?label=needs:phone", None).await;
    assert_eq!(
        v["total"], 1,
        "only the outage without a phone needs one: {v}"
    );
    for (query, field) in [
        ("per_page=0", "per_page"),
        ("per_page=500", "per_page"),
        ("severity=9", "severity"),
        ("page=x", "page"),
        ("sort=age", "sort"),
    ] {
        let (st, v) = s.get(&format!("/v1/tickets?{query}"), None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(v["field"], field, "{query}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_messages_decisions_questions_and_overrides() {
    let s = start("", None, false).await;
    s.message("M-1", "1", "Our production server is down.")
        .await;
    s.post(
        "/v1/tickets/1/override",
        None,
        r#"{"severity": 2, "reason": "r"}"#,
    )
    .await;
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "firstline_messages_total{channel=\"http\"} 1",
        "firstline_decisions_total{severity=\"1\"} 1",
        "firstline_questions_asked_total{question=\"phone\"} 1",
        "firstline_overrides_total{from=\"1\",to=\"2\"} 1",
        "firstline_processing_seconds_count 1",
        "# TYPE firstline_processing_seconds histogram",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_in_the_openapi_document_is_served() {
    let s = start("", None, false).await;
    s.message("O-1", "1", "Our production server is down.")
        .await;
    let (st, served) = s.get("/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(served, openapi::spec());
    let paths = served["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 10, "every route is documented");
    for (path, ops) in paths {
        let url = format!("{}{}", s.base, path.replace("{id}", "1"));
        for method in ops.as_object().unwrap().keys() {
            let req = match method.as_str() {
                "get" => s.client.get(&url),
                "post" => s.client.post(&url).body("{}"),
                other => panic!("unexpected method {other}"),
            };
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path}");
            assert!(
                status != 404 || body.contains("\"error\""),
                "{method} {path} is not routed"
            );
            let documented = ops[method]["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(&status.to_string()),
                "{method} {path} answered {status}, not documented"
            );
        }
    }
    let r = s
        .client
        .get(format!("{}/v2/nothing", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_and_retried_until_accepted() {
    // A receiver that fails the first delivery, then accepts, recording what it got.
    type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let seen: Seen = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let (seen, calls) = (seen.clone(), calls.clone());
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (seen, calls) = (seen.clone(), calls.clone());
                async move {
                    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let sig = headers["x-firstline-signature"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    seen.lock().unwrap().push((sig, body.to_vec()));
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = start("", None, true).await;
    s.message("W-1", "1", "The nightly backup of CT 200 failed.")
        .await;
    s.message("W-1", "2", "Update: now the production node is down.")
        .await;
    s.post(
        "/v1/tickets/1/override",
        None,
        r#"{"severity": 2, "reason": "lab"}"#,
    )
    .await;
    let retry = RetrySettings {
        first_seconds: 1,
        max_seconds: 1,
        max_attempts: 5,
    };
    let hook = Webhook::new(&url, b"hook-key".to_vec(), Duration::from_secs(5), retry).unwrap();
    let store = &s.intake.store;
    let first = hook.deliver_due(store).await.unwrap();
    assert_eq!(first, 2, "the first POST failed (503) and is retried later");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(hook.deliver_due(store).await.unwrap(), 1, "the retry");
    assert_eq!(hook.deliver_due(store).await.unwrap(), 0, "nothing twice");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let mut events = Vec::new();
    for (sig, body) in seen.iter() {
        assert!(
            auth::verify(b"hook-key", body, sig),
            "signature of {}",
            String::from_utf8_lossy(body)
        );
        events.push(serde_json::from_slice::<Value>(body).unwrap());
    }
    events.sort_by_key(|e| e["at"].as_i64().unwrap_or(0));
    let kinds: Vec<(String, bool)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["changed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(kinds.contains(&("decision".into(), false)), "{kinds:?}");
    assert!(
        kinds.contains(&("decision".into(), true)),
        "the change: {kinds:?}"
    );
    assert!(kinds.contains(&("override".into(), true)), "{kinds:?}");
}
