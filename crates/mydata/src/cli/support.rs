//! `civic support …`: the MyData support centre through the hub's API, as
//! the person signed in (an institution's staff, or a support agent).

use anyhow::Result;
use civic_client::client::{Client, HubArgs};
use civic_client::output::Format;
use civic_client::output::{items, s, table};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum SupportCommand {
    /// The tickets you follow (your institution's; all, for agents), newest
    /// first, a page at a time.
    Tickets {
        /// How many (1–500; default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Only tickets older than this id (the next page: the last id seen).
        #[arg(long)]
        before: Option<i64>,
    },
    /// One ticket with its messages.
    Ticket { id: i64 },
    /// Open a ticket for your institution.
    Open {
        /// new_dataset, linkage_problem, error or other.
        #[arg(long)]
        kind: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        text: String,
    },
    /// Reply to a ticket (an agent's reply answers it), or close it.
    Reply {
        id: i64,
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        close: bool,
    },
    /// The training sessions.
    Trainings,
    /// Schedule a training session (agents).
    Schedule {
        #[arg(long)]
        title: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
        #[arg(long)]
        place: String,
    },
    /// Record an attendee of a session (agents).
    Attendee {
        training: i64,
        #[arg(long)]
        institution: i64,
        #[arg(long)]
        name: String,
    },
    /// An institution's consulting history (agents).
    History { institution: i64 },
}

fn tickets(format: Format, v: &Value) {
    let rows: Vec<Value> = items(v)
        .into_iter()
        .map(|t| {
            json!({"id": t["id"], "institution": t["institution"]["name"], "kind": t["kind"],
                   "subject": t["subject"], "status": t["status"], "updated": t["updated_at"]})
        })
        .collect();
    let keys = ["id", "institution", "kind", "subject", "status", "updated"];
    table(format, &keys, &keys, &Value::Array(rows));
}

fn trainings(format: Format, v: &Value) {
    let rows: Vec<Value> = items(v)
        .into_iter()
        .map(|t| {
            let who: Vec<Value> = t["attendees"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| json!(format!("{} ({})", s(&a["name"]), s(&a["institution"]["name"]))))
                .collect();
            json!({"id": t["id"], "date": t["held_on"], "title": t["title"], "place": t["place"], "attendees": who})
        })
        .collect();
    let keys = ["id", "date", "title", "place", "attendees"];
    table(format, &keys, &keys, &Value::Array(rows));
}

pub async fn run(args: &HubArgs, format: Option<Format>, command: SupportCommand) -> Result<()> {
    let format = Format::resolve(format);
    let c = Client::new(args)?;
    match command {
        SupportCommand::Tickets { limit, before } => {
            let mut query = Vec::new();
            if let Some(l) = limit {
                query.push(format!("limit={l}"));
            }
            if let Some(b) = before {
                query.push(format!("before={b}"));
            }
            let path = if query.is_empty() {
                "/support/tickets".to_owned()
            } else {
                format!("/support/tickets?{}", query.join("&"))
            };
            tickets(format, &c.get(&path).await?)
        }
        SupportCommand::Ticket { id } => {
            let v: Value = c.get(&format!("/support/tickets/{id}")).await?;
            tickets(format, &v);
            let keys = ["at", "user", "text"];
            table(format, &keys, &keys, &v["messages"]);
        }
        SupportCommand::Open {
            kind,
            subject,
            text,
        } => {
            let body = json!({"kind": kind, "subject": subject, "text": text});
            tickets(format, &c.post("/support/tickets", &body).await?);
        }
        SupportCommand::Reply { id, text, close } => {
            let body = json!({"text": text, "close": close});
            tickets(
                format,
                &c.post(&format!("/support/tickets/{id}/replies"), &body)
                    .await?,
            );
        }
        SupportCommand::Trainings => trainings(format, &c.get("/support/trainings").await?),
        SupportCommand::Schedule { title, date, place } => {
            let body = json!({"title": title, "held_on": date, "place": place});
            trainings(format, &c.post("/support/trainings", &body).await?);
        }
        SupportCommand::Attendee {
            training,
            institution,
            name,
        } => {
            let body = json!({"institution_id": institution, "name": name});
            trainings(
                format,
                &c.post(&format!("/support/trainings/{training}/attendees"), &body)
                    .await?,
            );
        }
        SupportCommand::History { institution } => {
            let v: Value = c
                .get(&format!("/support/institutions/{institution}/history"))
                .await?;
            tickets(format, &v["tickets"]);
            trainings(format, &v["trainings"]);
        }
    }
    Ok(())
}
