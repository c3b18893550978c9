//! `civic eiss …`: the epidemic investigation through the hub's API, as
//! the person signed in with `civic login` (or an API token).

use anyhow::{bail, Context, Result};
use civic_client::client::{Client, HubArgs};
use civic_client::output::{self, columns, s, table, Format};
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `println!` that ends quietly when the reader went away.
macro_rules! out {
    ($($t:tt)*) => { output::emit(&format!($($t)*)) };
}

#[derive(Subcommand)]
pub enum EissCommand {
    /// List outbreak responses.
    Responses,
    /// Open an outbreak response (administrators).
    OpenResponse {
        #[arg(long)]
        name: String,
        #[arg(long)]
        legal_basis: String,
        /// The response's rules as JSON (contact_radius_m,
        /// min_overlap_minutes, lookback_days, …); omitted ones default.
        #[arg(long)]
        rules: Option<String>,
    },
    /// Register the cases of a case register (CSV).
    ImportCases {
        #[arg(long)]
        response: i64,
        file: PathBuf,
    },
    /// Record the interviews of cases (CSV, the case-route format).
    ImportInterviews {
        #[arg(long)]
        response: i64,
        file: PathBuf,
    },
    /// Load routes published elsewhere (CSV, the case-route format) for
    /// cluster detection.
    ImportRoutes {
        #[arg(long)]
        response: i64,
        file: PathBuf,
    },
    /// The cases of a response you may read.
    Cases {
        #[arg(long)]
        response: i64,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        cluster: Option<i64>,
    },
    /// One case: who (for its investigators), interview, requests,
    /// collection per holder.
    Case { id: i64 },
    /// Assign a case to investigators (user ids).
    Assign {
        #[arg(long)]
        case: i64,
        #[arg(long, value_delimiter = ',', required = true)]
        users: Vec<i64>,
    },
    /// Ask for a case's data, with a reason.
    Request {
        #[arg(long)]
        case: i64,
        /// location_pings, card_transactions, transit_taps (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "location_pings,card_transactions,transit_taps"
        )]
        items: Vec<String>,
        #[arg(long)]
        reason: String,
        /// Do not ask the holders who was where the case was.
        #[arg(long)]
        no_contacts: bool,
        /// The period (YYYY-MM-DD); default: the response's look-back.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
    /// Data requests: awaiting your decision, or a case's.
    Requests {
        #[arg(long)]
        case: Option<i64>,
    },
    /// Decide a data request in your duty.
    Decide {
        #[arg(long)]
        request: i64,
        #[arg(long, conflicts_with = "reject")]
        approve: bool,
        #[arg(long)]
        reject: bool,
        /// Required to reject.
        #[arg(long)]
        reason: Option<String>,
    },
    /// A case's route: stay points, trips, interview checks.
    Timeline {
        #[arg(long)]
        case: i64,
    },
    /// Contacts of a case, or of every case of a response you work on.
    Contacts {
        #[arg(long, conflicts_with = "response")]
        case: Option<i64>,
        #[arg(long)]
        response: Option<i64>,
    },
    /// Follow a contact up; `positive` makes it a case.
    Contact {
        id: i64,
        /// to_notify, notified, in_quarantine, tested, negative, positive.
        #[arg(long)]
        status: String,
        #[arg(long)]
        case_number: Option<String>,
        #[arg(long)]
        onset: Option<String>,
        #[arg(long)]
        confirmed: Option<String>,
    },
    /// Notify contacts (a notice each in the outbox).
    Notify {
        #[arg(long, value_delimiter = ',', required = true)]
        contacts: Vec<i64>,
    },
    /// The notices sent about a case.
    Notices {
        #[arg(long)]
        case: i64,
    },
    /// Every case of a response with its cluster, the cluster's place and
    /// the evidence of its link to its likely infector (`--format csv`:
    /// case_id,cluster_id,place,infector,link_date,link_place,
    /// link_setting,link_basis,link_strength; `civic sim score` reads it).
    Clusters {
        #[arg(long)]
        response: i64,
    },
    /// End a response: the nodes delete what they sent, its data key and
    /// records are destroyed; prints the signed deletion certificate.
    CloseResponse { response: i64 },
    /// The deletion certificate of a closed response.
    Certificate { response: i64 },
}

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

pub async fn run(args: &HubArgs, format: Option<Format>, command: EissCommand) -> Result<()> {
    let format = Format::resolve(format);
    let c = Client::new(args)?;
    match command {
        EissCommand::Responses => {
            let v: Value = c.get("/responses").await?;
            table(
                format,
                &["id", "name", "status", "opened", "legal basis"],
                &["id", "name", "status", "opened_at", "legal_basis"],
                &v,
            );
        }
        EissCommand::OpenResponse {
            name,
            legal_basis,
            rules,
        } => {
            let rules: Option<Value> = rules
                .map(|r| serde_json::from_str(&r).context("--rules must be JSON"))
                .transpose()?;
            let v: Value = c
                .post(
                    "/responses",
                    &json!({"name": name, "legal_basis": legal_basis, "rules": rules}),
                )
                .await?;
            columns(format, &["id", "name", "status"], &json!([v]));
        }
        EissCommand::ImportCases { response, file } => {
            let v: Value = c
                .post_csv(
                    &format!("/responses/{response}/case-register"),
                    read(&file)?,
                )
                .await?;
            let cases = v.as_array().map_or(&[][..], Vec::as_slice);
            let estimated = cases
                .iter()
                .filter(|c| c["onset_estimated"] == true)
                .count();
            eprintln!("{} cases registered", cases.len());
            if estimated > 0 {
                eprintln!(
                    "{estimated} without an onset date: estimated from the confirmation date (the response's rule onset_to_confirmation_days), marked \"estimated\""
                );
            }
            columns(
                format,
                &["id", "number", "region", "onset", "confirmed", "assigned"],
                &marked_onsets(v.clone(), format),
            );
        }
        EissCommand::ImportInterviews { response, file } => {
            let v: Value = c
                .post_csv(&format!("/responses/{response}/interviews"), read(&file)?)
                .await?;
            out!("interviews of {} cases recorded", s(&v["count"]));
        }
        EissCommand::ImportRoutes { response, file } => {
            let v: Value = c
                .post_csv(&format!("/responses/{response}/routes"), read(&file)?)
                .await?;
            out!(
                "{} route rows loaded: {} cases created, {} updated",
                s(&v["rows"]),
                s(&v["cases_created"]),
                s(&v["cases_updated"])
            );
        }
        EissCommand::Cases {
            response,
            region,
            status,
            cluster,
        } => {
            let mut query = vec![];
            if let Some(r) = region {
                query.push(format!("region={r}"));
            }
            if let Some(st) = status {
                query.push(format!("status={st}"));
            }
            if let Some(k) = cluster {
                query.push(format!("cluster={k}"));
            }
            let v: Value = c
                .get(&format!("/responses/{response}/cases?{}", query.join("&")))
                .await?;
            columns(
                format,
                &[
                    "id",
                    "number",
                    "region",
                    "status",
                    "onset",
                    "confirmed",
                    "cluster",
                ],
                &marked_onsets(v, format),
            );
        }
        EissCommand::Case { id } => {
            let v: Value = c.get(&format!("/cases/{id}")).await?;
            if format == Format::Table {
                let case = &v["case"];
                out!(
                    "case {} (id {}), {} — {}",
                    s(&case["number"]),
                    s(&case["id"]),
                    s(&case["region"]),
                    s(&case["status"])
                );
                out!(
                    "onset {}{}, confirmed {}; cluster {}",
                    s(&case["onset"]),
                    if case["onset_estimated"] == true {
                        " (estimated)"
                    } else {
                        ""
                    },
                    s(&case["confirmed"]),
                    s(&case["cluster"])
                );
                if !v["subject"].is_null() {
                    out!("subject: {}", v["subject"]);
                }
                out!(
                    "interview: {} places told",
                    v["interview"].as_array().map_or(0, Vec::len)
                );
                out!("requests:");
                table(
                    format,
                    &["id", "items", "status", "requested"],
                    &["id", "items", "status", "requested_at"],
                    &v["requests"],
                );
                out!("collection:");
                columns(
                    format,
                    &["node", "purpose", "status", "detail"],
                    &v["collections"],
                );
            } else {
                output::print(format, &[], &[], v);
            }
        }
        EissCommand::Assign { case, users } => {
            c.put(
                &format!("/cases/{case}/assignees"),
                &json!({"users": users}),
            )
            .await?;
            out!("case {case} assigned to {users:?}");
        }
        EissCommand::Request {
            case,
            items,
            reason,
            no_contacts,
            from,
            until,
        } => {
            let v: Value = c
                .post(
                    &format!("/cases/{case}/data-requests"),
                    &json!({"items": items, "reason": reason, "contacts": !no_contacts, "from": from, "until": until}),
                )
                .await?;
            table(
                format,
                &["request", "case", "items", "from", "until", "status"],
                &[
                    "id",
                    "case_number",
                    "items",
                    "data_from",
                    "data_until",
                    "status",
                ],
                &json!([v]),
            );
        }
        EissCommand::Requests { case } => {
            let v: Value = match case {
                Some(case) => c.get(&format!("/cases/{case}/data-requests")).await?,
                None => c.get("/data-requests").await?,
            };
            table(
                format,
                &[
                    "request", "case", "items", "from", "until", "status", "reason",
                ],
                &[
                    "id",
                    "case_number",
                    "items",
                    "data_from",
                    "data_until",
                    "status",
                    "reason",
                ],
                &v,
            );
        }
        EissCommand::Decide {
            request,
            approve,
            reject,
            reason,
        } => {
            if approve == reject {
                bail!("say --approve or --reject (with --reason)");
            }
            let v: Value = c
                .post(
                    &format!("/data-requests/{request}/decision"),
                    &json!({"approve": approve, "reason": reason}),
                )
                .await?;
            table(
                format,
                &["request", "case", "status"],
                &["id", "case_number", "status"],
                &json!([v]),
            );
        }
        EissCommand::Timeline { case } => {
            let v: Value = c.get(&format!("/cases/{case}/timeline")).await?;
            let off = offset(&c, Some(case), None).await;
            let stays: Vec<Vec<String>> = v["stays"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|st| {
                    let sources: Vec<String> = st["sources"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|x| format!("{}:{}", s(&x["kind"]), s(&x["holder"])))
                        .collect();
                    let when = |k: &str| local(&st[k], off);
                    vec![
                        s(&st["id"]),
                        when("arrival"),
                        when("departure"),
                        s(&st["minutes"]),
                        s(&st["place"]),
                        format!(
                            "{:.5},{:.5}",
                            st["lat"].as_f64().unwrap_or(0.0),
                            st["lon"].as_f64().unwrap_or(0.0)
                        ),
                        sources.join(" "),
                        match &st["interview"] {
                            Value::String(x) => x.clone(),
                            Value::Object(_) => "told".into(),
                            _ => String::new(),
                        },
                    ]
                })
                .collect();
            output::print(
                format,
                &[
                    "stay",
                    "arrival (local)",
                    "departure (local)",
                    "minutes",
                    "place",
                    "where",
                    "sources",
                    "interview",
                ],
                &stays,
                v.clone(),
            );
            if format == Format::Table {
                let unsupported = v["interview"]
                    .as_array()
                    .map_or(0, |a| a.iter().filter(|c| c["unsupported"] == true).count());
                out!(
                    "{} trips; {} told places no data supports",
                    v["trips"].as_array().map_or(0, Vec::len),
                    unsupported
                );
            }
        }
        EissCommand::Contacts { case, response } => {
            let v: Value = match (case, response) {
                (Some(case), _) => c.get(&format!("/cases/{case}/contacts")).await?,
                (None, Some(r)) => c.get(&format!("/responses/{r}/contacts")).await?,
                (None, None) => bail!("give --case or --response"),
            };
            let off = offset(&c, case, response).await;
            let rows: Vec<Vec<String>> = v
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|x| {
                    vec![
                        s(&x["id"]),
                        s(&x["case_number"]),
                        s(&x["holder"]),
                        s(&x["identifier"]),
                        s(&x["place"]),
                        local(&x["first_seen"], off),
                        local(&x["last_seen"], off),
                        s(&x["overlap_minutes"]),
                        s(&x["status"]),
                    ]
                })
                .collect();
            output::print(
                format,
                &[
                    "id",
                    "case",
                    "holder",
                    "identifier",
                    "place",
                    "first seen (local)",
                    "last seen (local)",
                    "overlap min",
                    "status",
                ],
                &rows,
                v,
            );
        }
        EissCommand::Contact {
            id,
            status,
            case_number,
            onset,
            confirmed,
        } => {
            let v: Value = c
                .patch(
                    &format!("/contacts/{id}"),
                    &json!({"status": status, "case_number": case_number, "onset_date": onset, "confirmed_date": confirmed}),
                )
                .await?;
            table(
                format,
                &["id", "case", "status", "linked case"],
                &["id", "case_number", "status", "linked_case"],
                &json!([v]),
            );
        }
        EissCommand::Notify { contacts } => {
            let v: Value = c
                .post("/contacts/notify", &json!({"contacts": contacts}))
                .await?;
            out!("{} contacts notified", s(&v["notified"]));
        }
        EissCommand::Notices { case } => {
            let v: Value = c.get(&format!("/cases/{case}/notices")).await?;
            table(
                format,
                &["id", "kind", "recipient", "text", "created"],
                &["id", "kind", "recipient", "text", "created_at"],
                &v,
            );
        }
        EissCommand::Clusters { response } => {
            let v: Value = c
                .get(&format!("/responses/{response}/clusters/assignments"))
                .await?;
            // A table shows the links in short; CSV and JSON every field of
            // each link's evidence.
            const KEYS: [&str; 9] = [
                "case_id",
                "cluster_id",
                "place",
                "infector",
                "link_date",
                "link_place",
                "link_setting",
                "link_basis",
                "link_strength",
            ];
            if format == Format::Table {
                table(
                    format,
                    &[
                        "case",
                        "cluster",
                        "place",
                        "infected by",
                        "met",
                        "how",
                        "strength",
                    ],
                    &[
                        "case_id",
                        "cluster_id",
                        "place",
                        "infector",
                        "link_place",
                        "link_basis",
                        "link_strength",
                    ],
                    &v,
                );
            } else {
                table(format, &KEYS, &KEYS, &v);
            }
        }
        EissCommand::CloseResponse { response } => {
            let v: Value = c
                .post(&format!("/responses/{response}/close"), &json!({}))
                .await?;
            certificate(format, &v);
        }
        EissCommand::Certificate { response } => {
            let v: Value = c.get(&format!("/responses/{response}/certificate")).await?;
            certificate(format, &v);
        }
    }
    Ok(())
}

/// The local offset (minutes east of UTC) of a case's or a response's
/// rules, for showing times as investigators read them.
async fn offset(c: &Client, case: Option<i64>, response: Option<i64>) -> i32 {
    let response = match (case, response) {
        (_, Some(r)) => Some(r),
        (Some(case), None) => c
            .get::<Value>(&format!("/cases/{case}"))
            .await
            .ok()
            .and_then(|v| v["case"]["response"].as_i64()),
        _ => None,
    };
    match response {
        Some(r) => c
            .get::<Value>(&format!("/responses/{r}"))
            .await
            .ok()
            .and_then(|v| v["rules"]["utc_offset_minutes"].as_i64())
            .unwrap_or(0) as i32,
        None => 0,
    }
}

/// `YYYY-MM-DD HH:MM` at `offset` minutes east of UTC, from Unix seconds
/// or an RFC 3339 string.
fn local(v: &Value, offset: i32) -> String {
    let t = match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| time::OffsetDateTime::from_unix_timestamp(n).ok()),
        Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        }
        _ => None,
    };
    let Some(t) = t else { return s(v) };
    let t = t.to_offset(
        time::UtcOffset::from_whole_seconds(offset * 60).unwrap_or(time::UtcOffset::UTC),
    );
    format!(
        "{}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn certificate(format: Format, v: &Value) {
    if format != Format::Table {
        output::print(format, &[], &[], v.clone());
        return;
    }
    let b = &v["body"];
    out!(
        "deletion certificate {} of response {} ({})",
        s(&v["id"]),
        s(&b["response"]),
        s(&b["name"])
    );
    out!(
        "  closed by {} at {}; data key {} destroyed",
        s(&b["closed_by"]),
        s(&b["closed_at"]),
        s(&b["data_key_destroyed"])
    );
    out!("  hub records deleted: {}", b["hub_records"]);
    for n in b["nodes"].as_array().cloned().unwrap_or_default() {
        out!(
            "  node {}: {} — {} answers ({} bytes) deleted, {} absent",
            s(&n["node"]),
            if n["confirmed"] == true {
                "confirmed"
            } else {
                "NOT CONFIRMED"
            },
            s(&n["answers_deleted"]),
            s(&n["bytes_deleted"]),
            s(&n["absent"])
        );
    }
    out!(
        "  signed by the hub's key {}: {}",
        s(&b["issuer"]),
        s(&v["signature"])
    );
}

/// Case rows for a table, an estimated onset marked as such (CSV keeps
/// the date, JSON the date and its `onset_estimated` flag).
fn marked_onsets(mut v: Value, format: Format) -> Value {
    if format == Format::Table {
        for case in v.as_array_mut().into_iter().flatten() {
            if case["onset_estimated"] == true {
                case["onset"] = json!(format!("{} (estimated)", s(&case["onset"])));
            }
        }
    }
    v
}
