//! What arrives on the command line or a channel → the text the triage engine reads.

use crate::channels::email::parse::{self, ParseError};

/// Reads one message: a raw email when it looks like one, else plain UTF-8 text.
pub fn message_text(raw: &[u8]) -> Result<String, ParseError> {
    if parse::looks_like_email(raw) {
        Ok(parse::parse_email(raw)?.triage_text())
    } else {
        Ok(String::from_utf8_lossy(raw).into_owned())
    }
}

/// Reads a raw email given explicitly (an `eml` field): no detection, parse errors reported.
pub fn email_text(raw: &[u8]) -> Result<String, ParseError> {
    Ok(parse::parse_email(raw)?.triage_text())
}
