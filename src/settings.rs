//! Settings: the embedded `config/default.toml`, then a file (`--config` or
//! `FIRSTLINE_CONFIG`), then `FIRSTLINE__SECTION__KEY` environment variables. Secrets come
//! only from the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The defaults compiled into the binary.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variables holding secrets (never read from a file).
pub const IMAP_PASSWORD_ENV: &str = "FIRSTLINE_IMAP_PASSWORD";
pub const SMTP_PASSWORD_ENV: &str = "FIRSTLINE_SMTP_PASSWORD";
pub const API_TOKENS_ENV: &str = "FIRSTLINE_API_TOKENS";
pub const INBOUND_SECRET_ENV: &str = "FIRSTLINE_INBOUND_SECRET";
pub const WEBHOOK_SECRET_ENV: &str = "FIRSTLINE_WEBHOOK_SECRET";
pub const DISCORD_TOKEN_ENV: &str = "FIRSTLINE_DISCORD_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid settings:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub store: StoreSettings,
    pub policy: PolicySettings,
    pub http: HttpSettings,
    pub email: EmailSettings,
    pub discord: DiscordSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSettings {
    pub enabled: bool,
    #[serde(deserialize_with = "channel_ids")]
    pub support_channels: Vec<u64>,
    pub triage_channel: u64,
    pub guild: u64,
    pub agent_role: u64,
    pub api_proxy: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub enabled: bool,
    pub address: String,
    pub max_body_bytes: usize,
    pub webhook_url: String,
    pub webhook_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    pub file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Inbound {
    Maildir,
    Imap,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outbound {
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Tls,
    Starttls,
    Plain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub enabled: bool,
    pub inbound: Inbound,
    pub outbound: Outbound,
    pub address: String,
    pub display_name: String,
    pub message_id_domain: String,
    pub ticket_prefix: String,
    pub max_message_bytes: u64,
    pub replies_per_thread_per_hour: u32,
    pub replies_per_sender_per_hour: u32,
    pub templates: String,
    pub copy_to: String,
    pub confirm_seconds: u64,
    pub maildir: MaildirSettings,
    pub imap: ImapSettings,
    pub outbox: OutboxSettings,
    pub smtp: SmtpSettings,
    pub retry: RetrySettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaildirSettings {
    pub path: PathBuf,
    pub poll_milliseconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: String,
    pub mailbox: String,
    pub idle: bool,
    pub poll_seconds: u64,
    pub keywords: bool,
    pub quarantine_keyword: String,
    pub quarantine_folder: String,
    pub severity_folders: BTreeMap<String, String>,
    pub reconnect_seconds: u64,
    pub reconnect_max_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: String,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub first_seconds: u64,
    pub max_seconds: u64,
    pub max_attempts: u32,
}

/// Discord ids: a list, or (from the environment) one id or ids separated by commas.
fn channel_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ids {
        Many(Vec<Id>),
        One(Id),
    }
    let parse = |id: Id| -> Result<Vec<u64>, D::Error> {
        match id {
            Id::Number(n) => Ok(vec![n]),
            Id::Text(t) => t
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u64>()
                        .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a Discord id")))
                })
                .collect(),
        }
    };
    match Ids::deserialize(d)? {
        Ids::One(id) => parse(id),
        Ids::Many(ids) => {
            let mut out = Vec::new();
            for id in ids {
                out.extend(parse(id)?);
            }
            Ok(out)
        }
    }
}

impl RetrySettings {
    /// The delay before attempt `attempts + 1`: first_seconds, doubled each time, at most
    /// max_seconds.
    pub fn delay(&self, attempts: u32) -> u64 {
        let factor = 1u64 << attempts.saturating_sub(1).min(30);
        self.first_seconds
            .saturating_mul(factor)
            .min(self.max_seconds)
    }
}

pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Settings {
    /// Loads the layered settings: embedded defaults, then `file` (when given; it must exist),
    /// then `FIRSTLINE__*` environment variables taken from `env`.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        let vars: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("FIRSTLINE__"))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("FIRSTLINE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(vars)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Loads with the process environment: `file`, else `FIRSTLINE_CONFIG`, else defaults only.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let from_env = std::env::var_os("FIRSTLINE_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(from_env);
        Settings::load_from(file.as_deref(), std::env::vars())
    }

    /// Every inconsistency at once.
    fn validate(&self) -> Result<(), SettingsError> {
        let mut errors = Vec::new();
        let h = &self.http;
        if h.enabled {
            if h.address.parse::<std::net::SocketAddr>().is_err() {
                errors.push(format!(
                    "http.address {:?} is not an address:port such as 127.0.0.1:8025",
                    h.address
                ));
            }
            let scheme_ok = ["http://", "https://"]
                .iter()
                .any(|p| h.webhook_url.starts_with(p));
            if !h.webhook_url.is_empty() && !scheme_ok {
                errors.push(format!(
                    "http.webhook_url {:?} must start with http:// or https://",
                    h.webhook_url
                ));
            }
        }
        let e = &self.email;
        if e.enabled {
            if !e.address.contains('@') {
                errors.push(format!(
                    "email.address {:?} is not an email address",
                    e.address
                ));
            }
            if e.message_id_domain.is_empty() || e.message_id_domain.contains(['@', '<', '>', ' '])
            {
                errors.push(format!(
                    "email.message_id_domain {:?} is not a domain",
                    e.message_id_domain
                ));
            }
            if e.ticket_prefix.is_empty()
                || !e.ticket_prefix.chars().all(|c| c.is_ascii_alphanumeric())
            {
                errors.push(format!(
                    "email.ticket_prefix {:?} must be letters and digits",
                    e.ticket_prefix
                ));
            }
            if e.inbound == Inbound::Imap {
                if e.imap.host.is_empty() {
                    errors.push("email.imap.host is empty but email.inbound = \"imap\"".into());
                }
                if e.imap.user.is_empty() {
                    errors.push("email.imap.user is empty but email.inbound = \"imap\"".into());
                }
                match e.imap.security {
                    Security::Starttls => errors.push(
                        "email.imap.security: use \"tls\" (or \"plain\" on loopback)".into(),
                    ),
                    Security::Plain if !is_loopback(&e.imap.host) => errors.push(format!(
                        "email.imap.security = \"plain\" is only allowed for a loopback host, not {:?}",
                        e.imap.host
                    )),
                    _ => {}
                }
                for level in e.imap.severity_folders.keys() {
                    if !matches!(level.as_str(), "1" | "2" | "3" | "4") {
                        errors.push(format!(
                            "email.imap.severity_folders: key {level:?} is not a severity 1-4"
                        ));
                    }
                }
            }
            if e.outbound == Outbound::Smtp {
                if e.smtp.host.is_empty() {
                    errors.push("email.smtp.host is empty but email.outbound = \"smtp\"".into());
                }
                if e.smtp.security == Security::Plain && !is_loopback(&e.smtp.host) {
                    errors.push(format!(
                        "email.smtp.security = \"plain\" is only allowed for a loopback host, not {:?}",
                        e.smtp.host
                    ));
                }
            }
            if !e.copy_to.is_empty() && !e.copy_to.contains('@') {
                errors.push(format!(
                    "email.copy_to {:?} is not an email address",
                    e.copy_to
                ));
            }
            if e.retry.first_seconds == 0 || e.retry.max_attempts == 0 {
                errors.push("email.retry: first_seconds and max_attempts must be > 0".into());
            }
        }
        let d = &self.discord;
        if d.enabled {
            if d.support_channels.is_empty() && d.triage_channel == 0 && d.guild == 0 {
                errors.push(
                    "discord.enabled but no support_channels, triage_channel or guild: nothing to do"
                        .into(),
                );
            }
            if !d.api_proxy.is_empty() && !d.api_proxy.starts_with("http") {
                errors.push(format!(
                    "discord.api_proxy {:?} is not an http(s) URL",
                    d.api_proxy
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Invalid(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_load() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.email.inbound, Inbound::Maildir);
        assert_eq!(s.email.outbound, Outbound::File);
        assert_eq!(s.store.path, PathBuf::from("var/firstline.db"));
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let s = Settings::load_from(
            None,
            env(&[
                ("FIRSTLINE__EMAIL__IMAP__PORT", "1143"),
                ("FIRSTLINE__EMAIL__TICKET_PREFIX", "SUP"),
            ]),
        )
        .unwrap();
        assert_eq!(s.email.imap.port, 1143);
        assert_eq!(s.email.ticket_prefix, "SUP");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Settings::load_from(None, env(&[("FIRSTLINE__EMAIL__PASWORD", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pasword"), "{err}");
    }

    #[test]
    fn discord_channel_ids_come_as_one_or_many() {
        for (value, expect) in [("100", vec![100]), ("100,200", vec![100, 200])] {
            let s = Settings::load_from(
                None,
                env(&[("FIRSTLINE__DISCORD__SUPPORT_CHANNELS", value)]),
            )
            .unwrap();
            assert_eq!(s.discord.support_channels, expect, "{value}");
        }
        let err = Settings::load_from(
            None,
            env(&[("FIRSTLINE__DISCORD__SUPPORT_CHANNELS", "1,x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("support_channels") || err.contains("Discord id"),
            "{err}"
        );
    }

    #[test]
    fn plaintext_is_refused_off_loopback() {
        let err = Settings::load_from(
            None,
            env(&[
                ("FIRSTLINE__EMAIL__INBOUND", "imap"),
                ("FIRSTLINE__EMAIL__IMAP__HOST", "imap.example.com"),
                ("FIRSTLINE__EMAIL__IMAP__USER", "support"),
                ("FIRSTLINE__EMAIL__IMAP__SECURITY", "plain"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("loopback"), "{err}");
    }
}
