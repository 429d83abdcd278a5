//! Outbound webhooks: every decision and every change, POSTed as JSON from the outbox,
//! signed with `X-Firstline-Signature: sha256=<HMAC-SHA256 of the body>`, retried with
//! backoff until the receiver answers 2xx.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::auth;
use crate::intake::EVENTS;
use crate::settings::RetrySettings;
use crate::store::{OutboxRow, Store, StoreError};

/// Where events go and how they are signed.
pub struct Webhook {
    pub url: String,
    pub secret: Vec<u8>,
    pub client: reqwest::Client,
    pub retry: RetrySettings,
    pub lease_seconds: u64,
}

impl Webhook {
    pub fn new(
        url: &str,
        secret: Vec<u8>,
        timeout: Duration,
        retry: RetrySettings,
    ) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("firstline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Webhook {
            url: url.to_string(),
            secret,
            client,
            retry,
            lease_seconds: timeout.as_secs().saturating_mul(4).max(60),
        })
    }

    /// Posts every due event once; returns how many the receiver accepted.
    pub async fn deliver_due(&self, store: &Store) -> Result<usize, StoreError> {
        let mut delivered = 0;
        for row in store.due_outbox(EVENTS, "event", 100)? {
            if !store.outbox_claim(&row, self.lease_seconds)? {
                continue;
            }
            match self.post(&row).await {
                Ok(()) => {
                    store.outbox_sent(row.id)?;
                    delivered += 1;
                }
                Err(e) => store.outbox_attempt_failed(&row, &e, true, &self.retry, "webhook")?,
            }
        }
        Ok(delivered)
    }

    async fn post(&self, row: &OutboxRow) -> Result<(), String> {
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header(
                "x-firstline-signature",
                auth::sign(&self.secret, &row.payload),
            )
            .header("x-firstline-delivery", row.id.to_string())
            .body(row.payload.clone())
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", self.url))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {}: the receiver answered {status}", self.url))
        }
    }
}

/// The webhook task: posts due events every second until shutdown.
pub async fn run(store: Arc<Store>, webhook: Webhook, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = webhook.deliver_due(&store).await {
            tracing::error!(error = %e, "webhooks: store error");
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
