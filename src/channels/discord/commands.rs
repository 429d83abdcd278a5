//! Slash commands: /triage (classify a pasted message, ephemeral), /severity (an agent's
//! override, only for the configured role), /ticket (facts, history, decisions).

use serde_json::Value;
use serenity::all::{
    CommandDataOptionValue, CommandInteraction, CommandOptionType, Context, CreateCommand,
    CreateCommandOption, CreateInteractionResponse, CreateInteractionResponseMessage, GuildId,
    RoleId,
};

use super::{CHANNEL, Discord, truncate};
use crate::intake::OverrideError;
use crate::triage;

/// The commands, registered per guild (instant, unlike global commands).
pub fn definitions() -> Vec<CreateCommand> {
    vec![
        CreateCommand::new("triage")
            .description("Classify a pasted customer message (only you see the answer)")
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "text", "The message")
                    .required(true),
            ),
        CreateCommand::new("severity")
            .description("Set a ticket's severity (agents only); kept over automatic re-triage")
            .add_option(
                CreateCommandOption::new(CommandOptionType::Integer, "ticket", "Ticket number")
                    .required(true)
                    .min_int_value(1),
            )
            .add_option(
                CreateCommandOption::new(CommandOptionType::Integer, "level", "Severity 1-4")
                    .required(true)
                    .min_int_value(1)
                    .max_int_value(4),
            )
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "reason", "Why").required(true),
            ),
        CreateCommand::new("ticket")
            .description("Show a ticket: facts, history, decisions")
            .add_option(
                CreateCommandOption::new(CommandOptionType::Integer, "id", "Ticket number")
                    .required(true)
                    .min_int_value(1),
            ),
    ]
}

pub async fn register(ctx: &Context, guild: u64) {
    match GuildId::new(guild)
        .set_commands(&ctx.http, definitions())
        .await
    {
        Ok(cmds) => tracing::info!(guild, commands = cmds.len(), "slash commands registered"),
        Err(e) => tracing::error!(guild, error = %e, "cannot register slash commands"),
    }
}

fn option<'a>(cmd: &'a CommandInteraction, name: &str) -> Option<&'a CommandDataOptionValue> {
    cmd.data
        .options
        .iter()
        .find(|o| o.name == name)
        .map(|o| &o.value)
}

fn text_option(cmd: &CommandInteraction, name: &str) -> Option<String> {
    match option(cmd, name)? {
        CommandDataOptionValue::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_option(cmd: &CommandInteraction, name: &str) -> Option<i64> {
    match option(cmd, name)? {
        CommandDataOptionValue::Integer(n) => Some(*n),
        _ => None,
    }
}

/// Answers a command; every answer is ephemeral (only the caller sees it).
pub async fn handle(discord: &Discord, ctx: &Context, cmd: &CommandInteraction) {
    let answer = match cmd.data.name.as_str() {
        "triage" => triage_answer(discord, cmd),
        "severity" => severity_answer(discord, cmd),
        "ticket" => ticket_answer(discord, cmd),
        other => format!("Unknown command /{other}."),
    };
    let response = CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .content(truncate(&answer, 1900))
            .ephemeral(true),
    );
    if let Err(e) = cmd.create_response(&ctx.http, response).await {
        tracing::error!(command = %cmd.data.name, error = %e, "cannot answer a slash command");
    }
}

fn triage_answer(discord: &Discord, cmd: &CommandInteraction) -> String {
    let Some(text) = text_option(cmd, "text").filter(|t| !t.trim().is_empty()) else {
        return "Give the message to classify in `text`.".into();
    };
    let policy = &discord.intake.policy;
    let (_, d) = triage::triage(policy, &text);
    let mut out = format!(
        "**Severity {} ({})**, rule `{}`\n{}",
        d.severity, d.severity_name, d.rule, d.rationale
    );
    if !d.questions.is_empty() {
        out.push_str("\nQuestions to ask:");
        for q in &d.questions {
            out.push_str(&format!("\n- {}", q.text));
        }
    }
    out
}

fn severity_answer(discord: &Discord, cmd: &CommandInteraction) -> String {
    let role = discord.settings.agent_role;
    let is_agent = role != 0
        && cmd
            .member
            .as_ref()
            .is_some_and(|m| m.roles.contains(&RoleId::new(role)));
    if !is_agent {
        return if role == 0 {
            "Refused: no agent role is configured (discord.agent_role), so nobody may override."
                .into()
        } else {
            format!("Refused: only members with the <@&{role}> role may set a severity.")
        };
    }
    let (Some(ticket), Some(level), Some(reason)) = (
        int_option(cmd, "ticket"),
        int_option(cmd, "level"),
        text_option(cmd, "reason"),
    ) else {
        return "Give `ticket`, `level` and `reason`.".into();
    };
    let Ok(level) = u8::try_from(level) else {
        return format!("Refused: {level} is not a severity.");
    };
    let agent = format!("{} <discord:{}>", cmd.user.name, cmd.user.id.get());
    match discord
        .intake
        .override_severity(ticket, level, &reason, &agent, CHANNEL)
    {
        Ok(o) => format!(
            "{}-{ticket} is now severity {} ({}), was {}. Recorded: {}.",
            discord.ticket_prefix,
            o.to,
            discord.intake.policy.level_name(o.to),
            o.from,
            o.reason
        ),
        Err(OverrideError::Store(e)) => {
            tracing::error!(error = %e, "override not recorded");
            "Not recorded: the store failed; try again.".into()
        }
        Err(e) => format!("Refused: {e}."),
    }
}

fn ticket_answer(discord: &Discord, cmd: &CommandInteraction) -> String {
    let Some(id) = int_option(cmd, "id") else {
        return "Give the ticket number in `id`.".into();
    };
    let detail = match discord.intake.store.ticket_detail(id) {
        Ok(Some(d)) => d,
        Ok(None) => return format!("No ticket {id}."),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a ticket");
            return "The store failed; try again.".into();
        }
    };
    describe(&discord.ticket_prefix, &detail)
}

/// A ticket in a few lines: severity, facts, history.
pub fn describe(prefix: &str, t: &Value) -> String {
    let mut out = format!(
        "**{prefix}-{}: {}**\nseverity {} (firstline proposed {}), rule `{}`, {} message(s) via {}",
        t["id"],
        t["subject"].as_str().unwrap_or("(no subject)"),
        t["severity"],
        t["proposed_severity"],
        t["rule"].as_str().unwrap_or(""),
        t["messages"].as_array().map_or(0, Vec::len),
        t["channel"].as_str().unwrap_or("")
    );
    let facts: Vec<String> = t["attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
        .collect();
    if !facts.is_empty() {
        out.push_str(&format!("\nFacts: {}", facts.join(", ")));
    }
    out.push_str("\nHistory:");
    for d in t["decisions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n- severity {}: {}",
            d["severity"],
            d["reason"].as_str().unwrap_or("")
        ));
    }
    out
}
