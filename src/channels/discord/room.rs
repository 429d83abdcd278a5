//! The agents' triage room: one card (an embed) per ticket from any channel, posted when the
//! ticket is new and edited in place when it is re-triaged or overridden.

use serde_json::Value;
use serenity::all::{
    ChannelId, Colour, CreateEmbed, CreateEmbedFooter, CreateMessage, EditMessage, Http, MessageId,
};

use super::{CHANNEL, Discord, LEASE, discord_error, settle_failure};
use crate::intake::AGENT_ROOM;
use crate::settings::RetrySettings;
use crate::store::{self, StoreError};

/// The colour of a severity: red, orange, blue, grey.
fn colour(severity: u64) -> Colour {
    Colour::new(match severity {
        1 => 0xC0392B,
        2 => 0xE67E22,
        3 => 0x2980B9,
        _ => 0x7F8C8D,
    })
}

fn field_text(s: &str) -> String {
    let s = if s.trim().is_empty() { "-" } else { s };
    super::truncate(s, 1000)
}

/// The card of a ticket, from its detail (as `GET /v1/tickets/{id}` shows it).
pub fn card(discord: &Discord, t: &Value) -> CreateEmbed {
    let policy = &discord.intake.policy;
    let severity = t["severity"].as_u64().unwrap_or(0);
    let name = policy.level_name(severity as u8);
    let id = t["id"].as_i64().unwrap_or(0);
    let subject = t["subject"].as_str().unwrap_or("(no subject)");
    let rationale = t["decisions"]
        .as_array()
        .and_then(|d| {
            d.iter().rev().find(|d| {
                !d["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("agent override"))
            })
        })
        .and_then(|d| d["rationale"].as_str())
        .unwrap_or("");
    let facts: Vec<String> = t["attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k} = {}", v.to_string().trim_matches('"')))
        .collect();
    let questions: Vec<String> = t["questions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["id"].as_str().map(str::to_string))
        .collect();
    let mut level = format!("{severity} {name}");
    if !t["override_severity"].is_null() {
        level.push_str(&format!(
            " (set by an agent; firstline proposed {})",
            t["proposed_severity"]
        ));
    }
    CreateEmbed::new()
        .title(super::truncate(
            &format!("{}-{id}: {subject}", discord.ticket_prefix),
            250,
        ))
        .colour(colour(severity))
        .description(super::truncate(rationale, 2000))
        .field("Severity", level, true)
        .field(
            "Customer",
            field_text(t["customer"].as_str().unwrap_or("")),
            true,
        )
        .field(
            "Channel",
            field_text(t["channel"].as_str().unwrap_or("")),
            true,
        )
        .field("Facts", field_text(&facts.join("\n")), false)
        .field("Questions asked", field_text(&questions.join(", ")), false)
        .footer(CreateEmbedFooter::new(format!(
            "ticket {id} · rule {} · GET /v1/tickets/{id} · /ticket id:{id}",
            t["rule"].as_str().unwrap_or("")
        )))
}

/// Posts or edits the card of every ticket with a pending event.
pub async fn deliver_cards(
    discord: &Discord,
    http: &Http,
    retry: &RetrySettings,
) -> Result<(), StoreError> {
    let room = discord.settings.triage_channel;
    if room == 0 {
        return Ok(());
    }
    let store = &discord.intake.store;
    for row in store.due_outbox(AGENT_ROOM, "event", 50)? {
        if !store.outbox_claim(&row, LEASE)? {
            continue;
        }
        let Some(ticket) = row.ticket_id else {
            store.outbox_failed(row.id, "no ticket")?;
            continue;
        };
        let Some(detail) = store.ticket_detail(ticket)? else {
            store.outbox_failed(row.id, "the ticket is gone")?;
            continue;
        };
        let key = format!("card:{ticket}");
        let posted = store
            .cursor(CHANNEL, &key)?
            .and_then(|v| v.parse::<u64>().ok());
        let embed = card(discord, &detail);
        let channel = ChannelId::new(room);
        let result = match posted {
            Some(message) => {
                match channel
                    .edit_message(
                        http,
                        MessageId::new(message),
                        EditMessage::new().embed(embed.clone()),
                    )
                    .await
                {
                    Ok(_) => Ok(None),
                    // The card was deleted by someone: post it again.
                    Err(e) if discord_error(&e).is_some_and(|(status, _)| status == 404) => channel
                        .send_message(http, CreateMessage::new().embed(embed))
                        .await
                        .map(|m| Some(m.id.get())),
                    Err(e) => Err(e),
                }
            }
            None => channel
                .send_message(http, CreateMessage::new().embed(embed))
                .await
                .map(|m| Some(m.id.get())),
        };
        match result {
            Ok(new_message) => store.write(|tx| {
                if let Some(m) = new_message {
                    store::set_cursor(tx, CHANNEL, &key, &m.to_string())?;
                }
                tx.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = ?2 WHERE id = ?1",
                    rusqlite::params![row.id, store::now()],
                )?;
                Ok(())
            })?,
            Err(e) => settle_failure(store, &row, &e, retry)?,
        }
    }
    Ok(())
}
