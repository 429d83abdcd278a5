//! Who may call the API: bearer tokens from the environment (read or agent scope) and
//! HMAC-SHA256 signatures for inbound webhooks.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read the queue, classify text.
    Read,
    /// Everything `Read` may, plus overrides and ingesting messages.
    Agent,
}

/// A caller the token named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub scope: Scope,
}

/// The configured tokens. Empty: authentication is off (allowed only on loopback).
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<(String, Scope, String)>);

impl Tokens {
    /// Parses `name:scope:token` entries separated by commas.
    pub fn parse(spec: &str) -> Result<Tokens, String> {
        let mut out = Vec::new();
        for (i, entry) in spec
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let mut parts = entry.splitn(3, ':');
            let (Some(name), Some(scope), Some(token)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("token entry {} is not name:scope:token", i + 1));
            };
            let scope = match scope {
                "read" => Scope::Read,
                "agent" => Scope::Agent,
                other => {
                    return Err(format!(
                        "token entry {} ({name}): scope {other:?} is not read or agent",
                        i + 1
                    ));
                }
            };
            if token.len() < 8 {
                return Err(format!(
                    "token entry {} ({name}): a token needs at least 8 characters",
                    i + 1
                ));
            }
            out.push((name.to_string(), scope, token.to_string()));
        }
        Ok(Tokens(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The caller a presented token belongs to (compared in constant time).
    pub fn caller(&self, presented: &str) -> Option<Caller> {
        self.0
            .iter()
            .find(|(_, _, t)| constant_time_eq(t.as_bytes(), presented.as_bytes()))
            .map(|(name, scope, _)| Caller {
                name: name.clone(),
                scope: *scope,
            })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `sha256=<hex>` of the body under `secret`: the X-Firstline-Signature header value.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` under `secret`.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_name_their_caller() {
        let t = Tokens::parse("dash:read:readtoken1, ana:agent:agenttoken2").unwrap();
        assert_eq!(t.caller("agenttoken2").unwrap().scope, Scope::Agent);
        assert_eq!(t.caller("readtoken1").unwrap().name, "dash");
        assert!(t.caller("nope").is_none());
        assert!(
            Tokens::parse("ana:admin:xxxxxxxx")
                .unwrap_err()
                .contains("scope")
        );
        assert!(
            Tokens::parse("ana:agent")
                .unwrap_err()
                .contains("name:scope:token")
        );
        assert!(Tokens::parse("").unwrap().is_empty());
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_body() {
        let sig = sign(b"k", b"{\"a\":1}");
        assert!(sig.starts_with("sha256="));
        assert!(verify(b"k", b"{\"a\":1}", &sig));
        assert!(!verify(b"other", b"{\"a\":1}", &sig));
        assert!(!verify(b"k", b"{\"a\":2}", &sig));
        assert!(!verify(b"k", b"{\"a\":1}", "sha256=zz"));
    }
}
