//! `civic mydata …`: Public MyData's catalogue and linkage consultation
//! through the hub's API (the catalogue needs no sign-in; the rest is a
//! MyData operator's, signed in with `civic login`).

use civic_client::client::{Client, HubArgs};
use civic_client::output::Format;
use civic_client::output::{columns, items, table};
pub mod support;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum MydataCommand {
    /// The public catalogue of provided documents and datasets.
    Catalogue {
        /// Words to find in a title, description, code, item or holder.
        #[arg(long)]
        q: Option<String>,
    },
    /// Publish a document or dataset of your institution (a JSON file:
    /// kind, code, title, description, legal_basis, items).
    Publish { file: PathBuf },
    /// The linkage agreements your institution is party to.
    Agreements,
    /// One agreement with its history.
    Agreement { id: i64 },
    /// Apply, as a using agency, to use a catalogue entry for a service.
    Apply {
        #[arg(long)]
        offer: i64,
        #[arg(long)]
        service: String,
        /// Item names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        items: Vec<String>,
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        legal_basis: String,
        #[arg(long)]
        retention_days: i64,
    },
    /// A step of the consultation: question, approve, reject (the holder),
    /// answer (the agency), comment.
    Note {
        id: i64,
        #[arg(long)]
        kind: String,
        #[arg(long)]
        text: String,
    },
    /// Make an agency's X25519 key pair: the private key (a JWK, kept
    /// owner-only) goes to FILE; the public key is printed, to send with
    /// requests.
    Keygen { file: PathBuf },
    /// Ask a citizen for items under an approved agreement (an agency).
    Request {
        #[arg(long)]
        agreement: i64,
        /// The citizen, as the holders know him.
        #[arg(long)]
        subject: String,
        /// Item names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        items: Vec<String>,
        /// The agency's key file from `civic mydata keygen`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Your transfers: a citizen's own, an agency's requests, a holder's
    /// issued credentials.
    Transfers,
    /// One transfer.
    Transfer { id: i64 },
    /// Consent to a request (a citizen): once, or periodically until a day.
    Consent {
        id: i64,
        /// The last day of a periodic consent (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
        /// Days between sendings of a periodic consent.
        #[arg(long)]
        every: Option<i64>,
    },
    /// Refuse a request (a citizen).
    Refuse {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Withdraw a consent (a citizen): the credential is revoked and the
    /// agency told to delete.
    Withdraw { id: i64 },
    /// A transfer's consent receipt (ISO/IEC TS 27560 consent record).
    Receipt { id: i64 },
    /// Fetch a transfer's package (an agency), decrypt it with the key
    /// file and verify it against the holder's published keys and status
    /// list; prints the items.
    Fetch {
        id: i64,
        #[arg(long)]
        key: PathBuf,
        /// Also write credential.sd-jwt (and document.html with
        /// document.sig) into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Under a periodic consent, ask for a fresh credential (an agency).
    Resend { id: i64 },
    /// Confirm the agency deleted what it received of a withdrawn consent.
    Deletion { id: i64 },
    /// The agency's events (polling).
    Events {
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Subscribe the agency's webhook; prints the signing secret once.
    Webhook { url: String },
    /// Every access to your data (a citizen).
    Accesses,
    /// Download everything the holders keep of you (a citizen).
    Export {
        /// json, csv or vc.
        #[arg(long = "as", default_value = "json")]
        kind: String,
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

const TRANSFER_HEADERS: [&str; 8] = [
    "id", "entry", "agency", "holder", "subject", "items", "state", "updated",
];

fn transfer_rows(v: &Value) -> Value {
    let rows: Vec<Value> = items(v)
        .into_iter()
        .map(|t| {
            let names: Vec<Value> = t["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|i| i["name"].clone())
                .collect();
            let updated = [&t["withdrawn_at"], &t["decided_at"], &t["created_at"]]
                .into_iter()
                .find(|x| x.is_string())
                .cloned()
                .unwrap_or(Value::Null);
            json!({"id": t["id"], "entry": t["offer"]["code"], "agency": t["agency"]["name"],
                   "holder": t["holder"]["name"], "subject": t["subject"], "items": names,
                   "state": t["state"], "updated": updated})
        })
        .collect();
    Value::Array(rows)
}

/// The agency's private key, from its key file.
fn read_key(file: &PathBuf) -> Result<(x25519_dalek::StaticSecret, Value)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let jwk: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not a JWK", file.display()))?;
    let d: [u8; 32] = jwk["d"]
        .as_str()
        .and_then(|d| data_encoding::BASE64URL_NOPAD.decode(d.as_bytes()).ok())
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("{} has no X25519 private key (d)", file.display()))?;
    let secret = x25519_dalek::StaticSecret::from(d);
    let public = civic_credentials::Jwk::x25519(&x25519_dalek::PublicKey::from(&secret));
    Ok((secret, serde_json::to_value(public)?))
}

const AGREEMENT_HEADERS: [&str; 7] = [
    "id", "entry", "agency", "service", "version", "items", "status",
];

fn agreement_rows(v: &Value) -> Value {
    let rows: Vec<Value> = items(v)
        .into_iter()
        .map(|a| {
            json!({"id": a["id"], "entry": a["offer_code"], "agency": a["agency"]["name"], "service": a["service"],
                   "version": a["version"], "items": a["items"], "status": a["status"]})
        })
        .collect();
    Value::Array(rows)
}

pub async fn run(args: &HubArgs, format: Option<Format>, command: MydataCommand) -> Result<()> {
    let format = Format::resolve(format);
    let c = Client::new(args)?;
    let agreements = |v: &Value| {
        table(
            format,
            &AGREEMENT_HEADERS,
            &AGREEMENT_HEADERS,
            &agreement_rows(v),
        );
    };
    let transfers = |v: &Value| {
        table(
            format,
            &TRANSFER_HEADERS,
            &TRANSFER_HEADERS,
            &transfer_rows(v),
        );
    };
    match command {
        MydataCommand::Catalogue { q } => {
            let path = match q {
                Some(q) => format!("/mydata/catalogue?q={}", urlencode(&q)),
                None => "/mydata/catalogue".into(),
            };
            let v: Value = c.get_public(&path).await?;
            let rows: Vec<Value> = v["offers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|o| {
                    let items: Vec<Value> = o["items"].as_array().cloned().unwrap_or_default().into_iter().map(|i| i["name"].clone()).collect();
                    json!({"id": o["id"], "kind": o["kind"], "code": o["code"], "title": o["title"],
                           "holder": o["holder"]["name"], "items": items, "agreements": o["demand"]["agreements"]})
                })
                .collect();
            let keys = [
                "id",
                "kind",
                "code",
                "title",
                "holder",
                "items",
                "agreements",
            ];
            table(format, &keys, &keys, &Value::Array(rows));
        }
        MydataCommand::Publish { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let v: Value = c.post("/mydata/catalogue", &body).await?;
            let keys = ["id", "kind", "code", "title"];
            table(format, &keys, &keys, &Value::Array(vec![v]));
        }
        MydataCommand::Agreements => agreements(&c.get("/mydata/agreements").await?),
        MydataCommand::Agreement { id } => {
            let v: Value = c.get(&format!("/mydata/agreements/{id}")).await?;
            if format == Format::Json {
                civic_client::output::emit(&serde_json::to_string_pretty(&v)?);
            } else {
                agreements(&v);
                let keys = ["at", "user", "kind", "text"];
                table(format, &keys, &keys, &v["history"]);
            }
        }
        MydataCommand::Apply {
            offer,
            service,
            items,
            purpose,
            legal_basis,
            retention_days,
        } => {
            let body = json!({"offer_id": offer, "service": service, "items": items, "purpose": purpose,
                              "legal_basis": legal_basis, "retention_days": retention_days});
            agreements(&c.post("/mydata/agreements", &body).await?);
        }
        MydataCommand::Note { id, kind, text } => {
            let v: Value = c
                .post(
                    &format!("/mydata/agreements/{id}/notes"),
                    &json!({"kind": kind, "text": text}),
                )
                .await?;
            agreements(&v);
        }
        MydataCommand::Keygen { file } => {
            if file.exists() {
                anyhow::bail!("{} exists: a key is never overwritten", file.display());
            }
            let secret = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
            let public = civic_credentials::Jwk::x25519(&x25519_dalek::PublicKey::from(&secret));
            let mut private = serde_json::to_value(&public)?;
            private["d"] = data_encoding::BASE64URL_NOPAD
                .encode(secret.as_bytes())
                .into();
            civic_client::output::write_owner_only(
                &file,
                &serde_json::to_string_pretty(&private)?,
            )?;
            civic_client::output::emit(&serde_json::to_string_pretty(&public)?);
        }
        MydataCommand::Request {
            agreement,
            subject,
            items,
            key,
        } => {
            let (_, public) = read_key(&key)?;
            let body = json!({"agreement_id": agreement, "subject": subject, "items": items, "recipient_key": public});
            transfers(&c.post("/mydata/transfers", &body).await?);
        }
        MydataCommand::Transfers => transfers(&c.get("/mydata/transfers").await?),
        MydataCommand::Transfer { id } => {
            let v: Value = c.get(&format!("/mydata/transfers/{id}")).await?;
            if format == Format::Json {
                civic_client::output::emit(&serde_json::to_string_pretty(&v)?);
            } else {
                transfers(&v);
                println!(
                    "purpose: {}  (legal basis: {}; kept {} days)",
                    s(&v["purpose"]),
                    s(&v["legal_basis"]),
                    v["retention_days"]
                );
                let keys = ["id", "status_index", "delivered_at", "fetched_at", "kept"];
                table(format, &keys, &keys, &v["deliveries"]);
            }
        }
        MydataCommand::Consent { id, until, every } => {
            let body = match until {
                Some(until) => json!({"mode": "periodic", "until": until, "interval_days": every}),
                None => json!({"mode": "once"}),
            };
            transfers(
                &c.post(&format!("/mydata/transfers/{id}/consent"), &body)
                    .await?,
            );
        }
        MydataCommand::Refuse { id, reason } => {
            transfers(
                &c.post(
                    &format!("/mydata/transfers/{id}/refusal"),
                    &json!({"reason": reason}),
                )
                .await?,
            );
        }
        MydataCommand::Withdraw { id } => {
            transfers(
                &c.post(&format!("/mydata/transfers/{id}/withdrawal"), &json!({}))
                    .await?,
            );
        }
        MydataCommand::Resend { id } => {
            transfers(
                &c.post(&format!("/mydata/transfers/{id}/resend"), &json!({}))
                    .await?,
            );
        }
        MydataCommand::Deletion { id } => {
            transfers(
                &c.post(&format!("/mydata/transfers/{id}/deletion"), &json!({}))
                    .await?,
            );
        }
        MydataCommand::Receipt { id } => {
            let v: Value = c.get(&format!("/mydata/transfers/{id}/receipt")).await?;
            civic_client::output::emit(&serde_json::to_string_pretty(&v)?);
        }
        MydataCommand::Fetch { id, key, out } => {
            let (secret, _) = read_key(&key)?;
            let p: Value = c.get(&format!("/mydata/transfers/{id}/package")).await?;
            let (plain, _) = civic_credentials::jwe::decrypt(s(&p["credential"]), &secret)
                .map_err(|e| anyhow::anyhow!("the package does not open with this key: {e}"))?;
            let credential = String::from_utf8(plain)?;
            let keys: civic_credentials::JwkSet =
                serde_json::from_str(&c.get_url(s(&p["jwks_uri"])).await?)
                    .context("the holder's keys")?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let verified = civic_credentials::sdjwt::verify(&credential, &keys, now)
                .map_err(|e| anyhow::anyhow!("the credential does not verify: {e}"))?;
            if let Some((uri, idx)) = verified.status() {
                // The hub names where the holder's list is now; it must be
                // the list the credential names (the same path).
                let path = |u: &str| u.split_once("/api/").map(|(_, p)| p.to_owned());
                let at = s(&p["status_uri"]);
                if path(at) != path(&uri) {
                    anyhow::bail!("the hub's status list {at} is not the credential's ({uri})");
                }
                let token = c.get_url(at).await?;
                if civic_credentials::status::is_revoked(token.trim(), &keys, &uri, idx, now)
                    .map_err(|e| anyhow::anyhow!("the status list: {e}"))?
                {
                    anyhow::bail!("the credential was revoked: the citizen withdrew his consent");
                }
            }
            if let Some(dir) = &out {
                std::fs::create_dir_all(dir)?;
                civic_client::output::write_owner_only(
                    &dir.join("credential.sd-jwt"),
                    &credential,
                )?;
                if let Some(doc) = p["document"].as_str() {
                    let (plain, _) = civic_credentials::jwe::decrypt(doc, &secret)
                        .map_err(|e| anyhow::anyhow!("the document does not open: {e}"))?;
                    let doc: Value = serde_json::from_slice(&plain)?;
                    civic_client::output::write_owner_only(
                        &dir.join("document.html"),
                        s(&doc["html"]),
                    )?;
                    civic_client::output::write_owner_only(
                        &dir.join("document.sig"),
                        s(&doc["signature"]),
                    )?;
                }
            }
            let rows: Vec<Value> = verified
                .items
                .iter()
                .map(|n| json!({"item": n, "value": verified.claims[n]}))
                .collect();
            eprintln!(
                "verified: signed by {}, not revoked",
                s(&verified.claims["iss"])
            );
            columns(format, &["item", "value"], &Value::Array(rows));
        }
        MydataCommand::Events { after } => {
            let v: Value = c.get(&format!("/mydata/events?after={after}")).await?;
            let keys = ["seq", "type", "transfer_id", "at"];
            table(format, &keys, &keys, &v);
        }
        MydataCommand::Webhook { url } => {
            let v: Value = c.put_json("/mydata/webhook", &json!({"url": url})).await?;
            civic_client::output::emit(&serde_json::to_string_pretty(&v)?);
        }
        MydataCommand::Accesses => {
            let v: Value = c.get("/mydata/me/accesses").await?;
            let keys = ["at", "who", "institution", "action", "purpose", "outcome"];
            table(format, &keys, &keys, &v);
        }
        MydataCommand::Export { kind, out } => {
            if !matches!(kind.as_str(), "json" | "csv" | "vc") {
                anyhow::bail!("--as must be json, csv or vc");
            }
            let text = c
                .get_text(&format!("/mydata/me/export?format={kind}"))
                .await?;
            match out {
                Some(path) => {
                    civic_client::output::write_owner_only(&path, &text)?;
                    eprintln!("wrote {}", path.display());
                }
                None => civic_client::output::emit(&text),
            }
        }
    }
    Ok(())
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn urlencode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
