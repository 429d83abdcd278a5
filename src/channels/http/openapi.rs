//! The OpenAPI 3 document served at `/openapi.json`; a test walks it against the router.

use axum::Json;
use serde_json::{Value, json};

pub async fn document() -> Json<Value> {
    Json(spec())
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// The document. Every path and method here is a route of the router, and every route is
/// here (checked by the integration tests).
pub fn spec() -> Value {
    let auth_errors = json!({
        "401": error_response("No token, or an unknown one."),
        "403": error_response("The token's scope does not allow this."),
    });
    let with = |mut responses: Value, extra: Value| {
        if let (Value::Object(r), Value::Object(e)) = (&mut responses, extra) {
            r.extend(e);
        }
        responses
    };
    let id_param = json!({
        "name": "id", "in": "path", "required": true,
        "schema": {"type": "integer", "minimum": 1}, "description": "The ticket number."
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "firstline",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "First-line support triage: classify a message, feed a helpdesk's messages into tickets, read the queue, override a severity."
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A token from FIRSTLINE_API_TOKENS (read or agent scope)."},
                "signature": {"type": "apiKey", "in": "header", "name": "X-Firstline-Signature", "description": "sha256=<hex HMAC-SHA256 of the raw body> under FIRSTLINE_INBOUND_SECRET."}
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": "string", "description": "The request field or parameter that is wrong."}
                    }
                },
                "Decision": {
                    "type": "object",
                    "description": "The classify contract (severity-policy.md section 4).",
                    "required": ["severity", "severity_name", "rule", "rationale", "attributes", "evidence", "questions", "labels", "confidence"],
                    "properties": {
                        "id": {},
                        "severity": {"type": "integer", "minimum": 1, "maximum": 4},
                        "severity_name": {"type": "string"},
                        "rule": {"type": "string"},
                        "rationale": {"type": "string"},
                        "attributes": {"type": "object"},
                        "evidence": {"type": "array", "items": {"type": "object"}},
                        "questions": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "text": {"type": "string"}}}},
                        "labels": {"type": "array", "items": {"type": "string"}},
                        "confidence": {"type": "number"}
                    }
                },
                "TriageRequest": {
                    "type": "object", "additionalProperties": false,
                    "description": "Exactly one of text and eml.",
                    "properties": {
                        "id": {"description": "Echoed in the answer."},
                        "text": {"type": "string"},
                        "eml": {"type": "string", "description": "A raw RFC 5322 message."}
                    }
                },
                "MessageRequest": {
                    "type": "object", "additionalProperties": false, "required": ["thread"],
                    "description": "Exactly one of text and eml.",
                    "properties": {
                        "thread": {"type": "string", "description": "The sending system's conversation id: one ticket per thread."},
                        "id": {"type": "string", "description": "The sending system's message id: a repeated id is a duplicate."},
                        "from": {"type": "string"},
                        "subject": {"type": "string"},
                        "text": {"type": "string"},
                        "eml": {"type": "string"}
                    }
                },
                "MessageResult": {
                    "type": "object",
                    "properties": {
                        "ticket": {"type": "integer"},
                        "new_ticket": {"type": "boolean"},
                        "duplicate": {"type": "boolean"},
                        "severity": {"type": "integer"},
                        "previous_severity": {"type": "integer", "nullable": true},
                        "changed": {"type": "boolean"},
                        "decision": {"$ref": "#/components/schemas/Decision"}
                    }
                },
                "Ticket": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "channel": {"type": "string"},
                        "subject": {"type": "string", "nullable": true},
                        "customer": {"type": "string", "nullable": true},
                        "severity": {"type": "integer", "description": "The override when an agent set one, else firstline's."},
                        "proposed_severity": {"type": "integer"},
                        "language": {"type": "string", "description": "The customer's language (ISO 639-1); replies and questions use it."},
                        "rule": {"type": "string"},
                        "override_severity": {"type": "integer", "nullable": true},
                        "status": {"type": "string"},
                        "labels": {"type": "array", "items": {"type": "string"}},
                        "questions": {"type": "array", "items": {"type": "object"}},
                        "messages": {"type": "integer"},
                        "created_at": {"type": "integer", "description": "Unix seconds."},
                        "updated_at": {"type": "integer"}
                    }
                },
                "TicketDetail": {
                    "allOf": [{"$ref": "#/components/schemas/Ticket"}],
                    "type": "object",
                    "properties": {
                        "attributes": {"type": "object"},
                        "evidence": {"type": "array", "items": {"type": "object"}},
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "decisions": {"type": "array", "items": {"type": "object"}},
                        "overrides": {"type": "array", "items": {"type": "object"}}
                    }
                },
                "OverrideRequest": {
                    "type": "object", "additionalProperties": false, "required": ["severity", "reason"],
                    "properties": {
                        "severity": {"type": "integer", "minimum": 1, "maximum": 4},
                        "reason": {"type": "string", "minLength": 1}
                    }
                }
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/": {"get": {
                "summary": "The agents' queue page (HTML).",
                "parameters": [
                    {"name": "severity", "in": "query", "schema": {"type": "integer"}},
                    {"name": "label", "in": "query", "schema": {"type": "string"}},
                    {"name": "token", "in": "query", "schema": {"type": "string"}, "description": "Stores a token in a cookie for the page."}
                ],
                "responses": with(json!({"200": {"description": "The page.", "content": {"text/html": {}}}}), auth_errors.clone())
            }},
            "/healthz": {"get": {
                "summary": "Liveness and store check.", "security": [],
                "responses": {
                    "200": json_response("Healthy.", json!({"type": "object"})),
                    "503": json_response("The store is unavailable.", json!({"type": "object"}))
                }
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics.",
                "responses": with(json!({"200": {"description": "Prometheus text format 0.0.4.", "content": {"text/plain": {}}}}), auth_errors.clone())
            }},
            "/openapi.json": {"get": {
                "summary": "This document.", "security": [],
                "responses": {"200": json_response("OpenAPI 3.0.", json!({"type": "object"}))}
            }},
            "/v1/triage": {"post": {
                "summary": "Classify one message (stateless).",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TriageRequest"}}}},
                "responses": with(json!({
                    "200": json_response("The decision.", json!({"$ref": "#/components/schemas/Decision"})),
                    "400": error_response("Bad JSON; `field` names what is wrong."),
                    "413": error_response("The body is over http.max_body_bytes.")
                }), auth_errors.clone())
            }},
            "/v1/messages": {"post": {
                "summary": "Ingest a message from another system into its ticket (threads by `thread`).",
                "security": [{"signature": []}, {"bearer": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MessageRequest"}}}},
                "responses": with(json!({
                    "201": json_response("A new ticket.", json!({"$ref": "#/components/schemas/MessageResult"})),
                    "200": json_response("Added to its ticket (or a duplicate).", json!({"$ref": "#/components/schemas/MessageResult"})),
                    "400": error_response("Bad JSON; `field` names what is wrong."),
                    "413": error_response("The body is over http.max_body_bytes.")
                }), auth_errors.clone())
            }},
            "/v1/tickets": {"get": {
                "summary": "The queue: most severe first, then oldest.",
                "parameters": [
                    {"name": "severity", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 4}},
                    {"name": "label", "in": "query", "schema": {"type": "string"}, "description": "e.g. needs:phone"},
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}
                ],
                "responses": with(json!({
                    "200": json_response("A page of tickets.", json!({
                        "type": "object",
                        "properties": {
                            "tickets": {"type": "array", "items": {"$ref": "#/components/schemas/Ticket"}},
                            "page": {"type": "integer"}, "per_page": {"type": "integer"},
                            "total": {"type": "integer"}, "pages": {"type": "integer"}
                        }
                    })),
                    "400": error_response("A bad parameter; `field` names it.")
                }), auth_errors.clone())
            }},
            "/v1/tickets/{id}": {"get": {
                "summary": "One ticket: facts, evidence, messages, decisions, overrides.",
                "parameters": [id_param.clone()],
                "responses": with(json!({
                    "200": json_response("The ticket.", json!({"$ref": "#/components/schemas/TicketDetail"})),
                    "400": error_response("Not a ticket number."),
                    "404": error_response("No such ticket.")
                }), auth_errors.clone())
            }},
            "/v1/tickets/{id}/override": {"post": {
                "summary": "An agent sets the severity (recorded with who and why; never undone by re-triage).",
                "parameters": [id_param],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OverrideRequest"}}}},
                "responses": with(json!({
                    "200": json_response("Recorded.", json!({"type": "object", "properties": {"override": {"type": "object"}, "ticket": {"$ref": "#/components/schemas/TicketDetail"}}})),
                    "400": error_response("Bad JSON, a severity that is not a level, an empty reason."),
                    "404": error_response("No such ticket.")
                }), auth_errors.clone())
            }},
            "/v1/queue/version": {"get": {
                "summary": "A number that changes whenever the queue changes (for polling).",
                "responses": with(json!({"200": json_response("The version.", json!({"type": "object", "properties": {"version": {"type": "integer"}}}))}), auth_errors)
            }}
        }
    })
}
