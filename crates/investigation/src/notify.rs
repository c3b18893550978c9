//! Notices: the outbox is the record of every notice (the patient's, his
//! contacts'); a notification sender — an SMS gateway — takes them from
//! it. Without one configured, the outbox is all there is, and the
//! support centre or the public health centre reads it.

use super::contacts::{outbox_context, Notice};
use crate::store::ContactStore;
use crate::Investigation;
use civic_hub::Result;
use std::future::Future;
use std::pin::Pin;

/// Delivers one notice; an error leaves it in the outbox, to try again.
pub trait NoticeSender: Send + Sync {
    fn send<'a>(
        &'a self,
        recipient: &'a str,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<(), String>> + Send + 'a>>;
}

/// Posts each notice as JSON (`{"recipient": …, "text": …}`) to an SMS
/// gateway's HTTP API (`notice_webhook_url`), which answers 2xx once it
/// has taken it.
pub struct WebhookSender {
    url: String,
    http: reqwest::Client,
}

impl WebhookSender {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                // A redirect could lead the notices off TLS: none is followed.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }
}

impl NoticeSender for WebhookSender {
    fn send<'a>(
        &'a self,
        recipient: &'a str,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let response = self
                .http
                .post(&self.url)
                .json(&serde_json::json!({ "recipient": recipient, "text": text }))
                .send()
                .await
                // Without the URL, which may carry the gateway's token.
                .map_err(|e| e.without_url().to_string())?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("the gateway answered {}", response.status()))
            }
        })
    }
}

impl Investigation {
    /// Hands the notices not yet sent to `sender`, oldest first (at most
    /// 500 a call); returns how many it took.
    pub async fn deliver_notices(&self, sender: &dyn NoticeSender) -> Result<usize> {
        let mut entry = self.system_entry("eiss.outbox.deliver", "outbox".into());
        entry.actor_name = Some("hub:notifier".into());
        let messages = self.store.unsent_outbox(500, entry).await?;
        let mut sent = 0;
        for m in messages {
            let key = self.data_key(m.response).await?;
            let notice: Notice = key.open_json(&outbox_context(m.response), &m.sealed)?;
            match sender.send(&notice.recipient, &notice.text).await {
                Ok(()) => {
                    self.store
                        .mark_sent(m.id, civic_core::time::Timestamp::now())
                        .await?;
                    sent += 1;
                }
                // The gateway's words, never the notice's.
                Err(e) => {
                    tracing::warn!(notice = m.id, error = %e, "a notice was not taken; it stays in the outbox");
                    break;
                }
            }
        }
        Ok(sent)
    }
}
