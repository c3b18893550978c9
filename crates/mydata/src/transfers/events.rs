//! What agencies are told: their events, polled or pushed to a webhook
//! (Standard Webhooks signatures), and the workers that deliver, revoke
//! and push.

use super::*;

impl MyData {
    /// The agency's events after `after` (polling).
    pub async fn transfer_events(
        &self,
        ctx: &Ctx,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventView>> {
        self.authorize(
            ctx,
            Action::MydataTransfers,
            "mydata.events.read",
            "mydata-events",
        )
        .await?;
        let agency = ctx
            .principal()
            .map(|p| p.institution)
            .ok_or_else(|| HubError::BadRequest("events are read by an agency".into()))?;
        let events = self
            .store
            .events_after(agency, after.max(0), limit.clamp(1, 1000))
            .await?;
        Ok(events
            .into_iter()
            .map(|e| EventView {
                seq: e.seq,
                kind: e.kind,
                transfer_id: e.transfer,
                at: rfc3339(e.at),
            })
            .collect())
    }

    /// Subscribes the agency's webhook; returns the new signing secret.
    pub async fn set_transfer_webhook(
        &self,
        ctx: &Ctx,
        req: WebhookRequest,
    ) -> Result<WebhookView> {
        let entry = self
            .authorize(
                ctx,
                Action::MydataTransfers,
                "mydata.webhook.set",
                "mydata-webhook",
            )
            .await?;
        let agency = ctx
            .principal()
            .map(|p| p.institution)
            .ok_or_else(|| HubError::BadRequest("a webhook is set by an agency".into()))?;
        if req.url.chars().count() > 500 || !webhook_url_ok(req.url.trim()) {
            return Err(invalid(
                "url",
                "must be https://HOST[:PORT][/PATH] (plain http only to a loopback address)",
            ));
        }
        let url = req.url.trim();
        let parsed = reqwest::Url::parse(url).map_err(|_| invalid("url", "is not a URL"))?;
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback)) {
            return Err(invalid(
                "url",
                "must be https (plain http only to a loopback address)",
            ));
        }
        let secret = {
            use rand::RngCore;
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            k
        };
        let sealed = self
            .keys()
            .seal(&format!("mydata-webhook:{agency}"), &secret);
        self.store
            .set_webhook(
                Webhook {
                    agency,
                    url: url.to_owned(),
                    secret: sealed,
                    delivered_seq: 0,
                },
                entry,
            )
            .await?;
        self.state.events.notify_one();
        Ok(WebhookView {
            url: url.to_owned(),
            secret: format!("whsec_{}", data_encoding::BASE64.encode(&secret)),
        })
    }

    /// Sends every webhook its pending events, in order; a failed send is
    /// tried again on the next round. Returns how many were delivered.
    pub async fn push_webhooks(&self, http: &reqwest::Client) -> Result<usize> {
        let mut sent = 0;
        for hook in self.store.webhooks().await? {
            let Some(secret) = self
                .keys()
                .open(&format!("mydata-webhook:{}", hook.agency), &hook.secret)
            else {
                continue;
            };
            let events = self
                .store
                .events_after(hook.agency, hook.delivered_seq, 100)
                .await?;
            for e in events {
                let id = format!("evt_{}", e.seq);
                let ts = now_s();
                let body = json!({
                    "type": e.kind,
                    "timestamp": rfc3339(e.at),
                    "data": {"seq": e.seq, "transfer_id": e.transfer},
                })
                .to_string();
                let signature = webhook_signature(&secret, &id, ts, &body);
                let ok = http
                    .post(&hook.url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    break;
                }
                self.store.webhook_delivered(hook.agency, e.seq).await?;
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Runs the webhook sender and the revocation retry until the hub
    /// stops: on every new event, and every few seconds.
    pub fn spawn_mydata_workers(&self) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds");
            let mut round: u64 = 0;
            loop {
                tokio::select! {
                    () = hub.state.events.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                if let Err(e) = hub.push_webhooks(&http).await {
                    tracing::warn!(error = %e, "webhooks");
                }
                round += 1;
                if round.is_multiple_of(6) {
                    if let Err(e) = hub.revoke_pending().await {
                        tracing::warn!(error = %e, "revocations");
                    }
                    if let Err(e) = hub.deliver_pending(Duration::from_secs(30)).await {
                        tracing::warn!(error = %e, "deliveries");
                    }
                }
            }
        })
    }
}

/// The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA-256 of
/// `{id}.{timestamp}.{body}` under the secret.
pub fn webhook_signature(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        data_encoding::BASE64.encode(&mac.finalize().into_bytes())
    )
}

/// Whether `url` is what `civic_core::schemas::webhook_url` describes
/// (the same grammar, by hand): `https://HOST` of letters, digits, `.` and
/// `-`, or `http://` to a loopback address; an optional port of 1-5
/// digits; an optional path of `A-Z a-z 0-9 . _ ~ % / -`.
pub(super) fn webhook_url_ok(url: &str) -> bool {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        let host = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(r.len());
        if host == 0 {
            return false;
        }
        &r[host..]
    } else if let Some(r) = url.strip_prefix("http://") {
        match ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .find(|h| r.starts_with(**h))
        {
            Some(h) => &r[h.len()..],
            None => return false,
        }
    } else {
        return false;
    };
    let rest = match rest.strip_prefix(':') {
        Some(r) => {
            let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            if !(1..=5).contains(&digits) {
                return false;
            }
            &r[digits..]
        }
        None => rest,
    };
    rest.is_empty()
        || (rest.starts_with('/')
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._~%/-".contains(c)))
}

#[cfg(test)]
mod webhook_url_tests {
    #[test]
    fn webhook_addresses_are_https_or_loopback_http() {
        for ok in [
            "https://agency.example/hook",
            "https://10.0.0.5:9443",
            "http://127.0.0.1:8080/x",
            "http://localhost",
        ] {
            assert!(super::webhook_url_ok(ok), "{ok}");
        }
        for bad in [
            "http://agency.example/hook",
            "http://localhost.evil.example/",
            "https://",
            "https://a/b*",
            "https://a:123456",
            "ftp://a",
        ] {
            assert!(!super::webhook_url_ok(bad), "{bad}");
        }
    }
}
