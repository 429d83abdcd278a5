//! The agents' queue page: tickets by severity then age, facts and evidence highlighted in
//! the messages, questions asked and answered, the decision history, an override form, the
//! agreement report; it refreshes itself when the queue changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use regex::RegexBuilder;
use serde_json::{Value, json};

use super::auth::Scope;
use super::{ApiError, HttpState};
use crate::store::{Store, TicketFilter, report_rows};

const TEMPLATE: &str = include_str!("queue.html");

/// Tickets shown on the page at most.
const PAGE_TICKETS: usize = 100;

/// Days the agreement report looks back.
const REPORT_DAYS: i64 = 30;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_template("queue.html", TEMPLATE)
        .expect("the queue page template is valid (checked by the tests)");
    env
});

/// HTML-escapes text.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The message text as HTML with each piece of evidence marked (`<mark>` with the attribute
/// as its title). Evidence is matched case-insensitively with flexible white space, because
/// its text is the normalized (case-folded) form.
pub fn highlight(text: &str, evidence: &[(String, String)]) -> String {
    let mut phrases: Vec<&(String, String)> = evidence
        .iter()
        .filter(|(_, t)| t.trim().chars().count() >= 2)
        .collect();
    // Longest first, so that "production node hn07 down" wins over "down".
    phrases.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
    phrases.dedup_by(|a, b| a.1 == b.1);
    if phrases.is_empty() {
        return escape(text);
    }
    let pattern = phrases
        .iter()
        .map(|(_, t)| {
            t.split_whitespace()
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(r"\s+")
        })
        .map(|p| format!("({p})"))
        .collect::<Vec<_>>()
        .join("|");
    let Ok(re) = RegexBuilder::new(&pattern)
        .case_insensitive(true)
        .size_limit(1 << 22)
        .build()
    else {
        return escape(text);
    };
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let m = caps.get(0).expect("group 0 always matches");
        let which = (1..caps.len())
            .find(|&i| caps.get(i).is_some())
            .unwrap_or(1);
        let attribute = &phrases[which - 1].0;
        out.push_str(&escape(&text[last..m.start()]));
        out.push_str(&format!(
            "<mark title=\"{}\">{}</mark>",
            escape(attribute),
            escape(m.as_str())
        ));
        last = m.end();
    }
    out.push_str(&escape(&text[last..]));
    out
}

/// Everything the template shows about one ticket.
fn ticket_view(detail: &Value, now: i64) -> Value {
    let evidence: Vec<(String, String)> = detail["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["attribute"].as_str()?.to_string(),
                e["text"].as_str()?.to_string(),
            ))
        })
        .collect();
    let messages: Vec<Value> = detail["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let text = m["text"].as_str().unwrap_or("");
            json!({
                "sender": m["sender"],
                "subject": m["subject"],
                "automatic": m["automatic"],
                "received_at": m["received_at"],
                "html": highlight(text, &evidence),
            })
        })
        .collect();
    // A question is answered when a later decision no longer asks it.
    let decisions = detail["decisions"].as_array().cloned().unwrap_or_default();
    let latest: Vec<String> = decisions
        .iter()
        .rev()
        .find(|d| {
            !d["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("agent override"))
        })
        .and_then(|d| d["questions"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|q| q["id"].as_str().map(str::to_string))
        .collect();
    let mut asked: BTreeMap<String, String> = BTreeMap::new();
    for d in &decisions {
        for q in d["questions"].as_array().into_iter().flatten() {
            if let (Some(id), Some(text)) = (q["id"].as_str(), q["text"].as_str()) {
                asked
                    .entry(id.to_string())
                    .or_insert_with(|| text.to_string());
            }
        }
    }
    let questions: Vec<Value> = asked
        .into_iter()
        .map(|(id, text)| json!({"id": id, "text": text, "answered": !latest.contains(&id)}))
        .collect();
    let attributes: Vec<Value> = detail["attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| json!({"name": k, "value": v.to_string().trim_matches('"').to_string()}))
        .collect();
    let created = detail["created_at"].as_i64().unwrap_or(now);
    json!({
        "id": detail["id"],
        "subject": detail["subject"],
        "customer": detail["customer"],
        "channel": detail["channel"],
        "severity": detail["severity"],
        "proposed_severity": detail["proposed_severity"],
        "override_severity": detail["override_severity"],
        "rule": detail["rule"],
        "labels": detail["labels"],
        "age": age(now - created),
        "attributes": attributes,
        "messages": messages,
        "questions": questions,
        "decisions": decisions,
        "overrides": detail["overrides"],
    })
}

/// "3 min", "2 h", "5 d".
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

/// The agreement report: per level firstline proposed, the tickets, how many agents kept and
/// the agreement in percent, over the last `days`.
pub fn report(store: &Store, days: i64) -> Result<Value, crate::store::StoreError> {
    let since = crate::store::now() - days * 86400;
    let rows = report_rows(store, since)?;
    let mut per: BTreeMap<u8, (i64, i64, BTreeMap<u8, i64>)> = BTreeMap::new();
    for (proposed, final_level, n) in rows {
        let e = per.entry(proposed).or_default();
        e.0 += n;
        if proposed == final_level {
            e.1 += n;
        }
        *e.2.entry(final_level).or_default() += n;
    }
    let (total, agreed) = per.values().fold((0, 0), |(t, a), e| (t + e.0, a + e.1));
    let levels: Vec<Value> = per
        .into_iter()
        .map(|(level, (n, kept, finals))| {
            json!({
                "proposed": level,
                "tickets": n,
                "kept": kept,
                "agreement": if n > 0 { (kept as f64 * 1000.0 / n as f64).round() / 10.0 } else { 0.0 },
                "final": finals.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    Ok(json!({
        "days": days,
        "tickets": total,
        "kept": agreed,
        "agreement": if total > 0 { (agreed as f64 * 1000.0 / total as f64).round() / 10.0 } else { 0.0 },
        "levels": levels,
    }))
}

pub async fn queue(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    // `?token=` stores the token in a cookie and comes back without it in the address.
    if let Some(token) = q.get("token") {
        let cookie =
            format!("firstline_token={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000");
        return Ok((
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, "/".to_string()),
            ],
        )
            .into_response());
    }
    if let Err(e) = s.caller(&headers, Scope::Read) {
        if s.tokens.is_empty() {
            return Err(e);
        }
        return Ok((
            StatusCode::UNAUTHORIZED,
            Html(
                "<!doctype html><title>firstline</title><p>This queue needs a token: open <code>/?token=YOUR_TOKEN</code> once.</p>"
                    .to_string(),
            ),
        )
            .into_response());
    }
    let severity = q.get("severity").and_then(|v| v.parse::<u8>().ok());
    let label = q.get("label").filter(|l| !l.is_empty()).cloned();
    let filter = TicketFilter {
        severity,
        label: label.clone(),
        status: None,
        limit: PAGE_TICKETS,
        offset: 0,
    };
    let store = s.store();
    let (rows, total) = store.tickets_page(&filter).map_err(ApiError::internal)?;
    let now = crate::store::now();
    let mut tickets = Vec::new();
    for row in &rows {
        if let Some(detail) = store.ticket_detail(row.id).map_err(ApiError::internal)? {
            tickets.push(ticket_view(&detail, now));
        }
    }
    let levels: Vec<Value> = s
        .intake
        .policy
        .level_names
        .iter()
        .map(|(n, name)| json!({"level": n, "name": name}))
        .collect();
    let ctx = json!({
        "tickets": tickets,
        "total": total,
        "shown": rows.len(),
        "severity": severity,
        "label": label,
        "levels": levels,
        "version": store.queue_version().map_err(ApiError::internal)?,
        "report": report(store, REPORT_DAYS).map_err(ApiError::internal)?,
        "needs_token": !s.tokens.is_empty(),
        "partial": q.contains_key("partial"),
    });
    let html = TEMPLATES
        .get_template("queue.html")
        .and_then(|t| t.render(minijinja::value::Serde(&ctx)))
        .map_err(ApiError::internal)?;
    Ok(Html(html).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_marked_case_insensitively_and_text_is_escaped() {
        let ev = vec![
            ("server_down".to_string(), "node hn07 down".to_string()),
            ("environment".to_string(), "production".to_string()),
        ];
        let html = highlight("URGENT: Production <b>Node  HN07 down</b>", &ev);
        assert_eq!(
            html,
            "URGENT: <mark title=\"environment\">Production</mark> &lt;b&gt;<mark title=\"server_down\">Node  HN07 down</mark>&lt;/b&gt;"
        );
    }

    #[test]
    fn the_template_renders() {
        let t = TEMPLATES.get_template("queue.html").unwrap();
        let html = t
            .render(minijinja::value::Serde(&json!({
                "tickets": [], "total": 0, "shown": 0, "levels": [], "version": 0,
                "report": {"days": 30, "tickets": 0, "kept": 0, "agreement": 0.0, "levels": []},
                "needs_token": false, "partial": false
            })))
            .unwrap();
        assert!(html.contains("No tickets"), "{html}");
    }
}
