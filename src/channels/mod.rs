//! Channels: each turns a protocol into messages for triage and decisions back into the protocol.

pub mod discord;
pub mod email;
pub mod http;
