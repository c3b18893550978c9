//! `civic mydata …`: Public MyData's catalogue and linkage consultation
//! through the hub's API (the catalogue needs no sign-in; the rest is a
//! MyData operator's, signed in with `civic login`).

use crate::client::{Client, HubArgs};
use crate::eiss::{items, table};
use crate::output::Format;
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
                crate::output::emit(&serde_json::to_string_pretty(&v)?);
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
    }
    Ok(())
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
