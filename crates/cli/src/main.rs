//! `civic`: the one binary of Civic Data Hub. It parses arguments and calls
//! the hub; errors end as one line on stderr and a non-zero exit.

mod bench;
mod client;
mod eiss;
mod mydata;
mod output;
mod support;

use anyhow::{anyhow, bail, Context, Result};
use civic_core::identity::{ApiTokenId, InstitutionId, UserId};
use civic_hub::admin::UserRequest;
use civic_hub::config::LogFormat;
use civic_hub::ledger::verify_ledger;
use civic_hub::{Config, Ctx, Hub, HubKeys};
use civic_store::{MetaStore, Store};
use clap::{Args, Parser, Subcommand};
use output::Format;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "civic",
    version,
    about = "Civic Data Hub: lawful, fast and verifiable exchange of data between institutions"
)]
struct Cli {
    /// Log as JSON lines (default: human-readable text).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform on this machine: the hub on SQLite, seeded with
    /// demo institutions and users whose logins are printed.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[arg(long, default_value = "./civic-data")]
        data_dir: PathBuf,
        /// People in the demo's synthetic city (generated once, into
        /// DATA_DIR/city; bigger takes longer: 100000 takes ~15 s).
        #[arg(long, default_value_t = 2_000)]
        sim_people: usize,
        /// Days the demo's synthetic city is simulated for.
        #[arg(long, default_value_t = 14)]
        sim_days: u32,
        /// The hub's database (default: SQLite in DATA_DIR): a PostgreSQL
        /// URL runs the same demo on the deployment database.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Run the hub from a configuration file (and CIVIC_* variables).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create or upgrade the database schema.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The audit ledger.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Institutions, users, duties, second factors and API tokens.
    Admin {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The synthetic city and outbreak: generate data with ground truth,
    /// score what the platform found against it.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// An institution node's own data: import, and local exposure batches.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Sign in to a hub (password on standard input, or typed) and keep
    /// the session for `civic eiss …` (in ~/.config/civic, owner-only).
    Login {
        #[command(flatten)]
        hub: client::HubArgs,
        #[arg(long)]
        username: String,
        /// The current code of your authenticator (duties that see
        /// personal data need it).
        #[arg(long)]
        totp: Option<String>,
    },
    /// End the session kept by `civic login`.
    Logout {
        #[command(flatten)]
        hub: client::HubArgs,
    },
    /// The epidemic investigation, through the hub's API as the person
    /// signed in: responses, cases, requests and decisions, routes,
    /// contacts, clusters, the end of a response.
    Eiss {
        #[command(flatten)]
        hub: client::HubArgs,
        #[arg(long, value_enum, global = true)]
        format: Option<Format>,
        #[command(subcommand)]
        command: eiss::EissCommand,
    },
    /// Public MyData: the catalogue (public), publishing in it, and the
    /// linkage consultation between holders and agencies.
    Mydata {
        #[command(flatten)]
        hub: client::HubArgs,
        #[arg(long, value_enum, global = true)]
        format: Option<Format>,
        #[command(subcommand)]
        command: mydata::MydataCommand,
    },
    /// The MyData support centre: tickets, trainings, institutions'
    /// consulting history.
    Support {
        #[command(flatten)]
        hub: client::HubArgs,
        #[arg(long, value_enum, global = true)]
        format: Option<Format>,
        #[command(subcommand)]
        command: support::SupportCommand,
    },
    /// Measured runs on a synthetic city (see bench/README.md).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Print the current one-time code of a TOTP secret (for the demo).
    TotpCode {
        /// Base32 secret, as printed by `civic demo`.
        secret: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The epidemic investigation end to end: every confirmed case of a
    /// city asked for, approved, collected from the nodes, its route,
    /// contacts and cluster built; timed per case and scored against the
    /// city's truth.
    Eiss {
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        #[arg(long, default_value_t = 14)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the city, the hub's database, the nodes and the results go.
        #[arg(long, default_value = "./bench-data/eiss")]
        dir: PathBuf,
        /// A PostgreSQL database instead of SQLite in --dir.
        #[arg(long)]
        database_url: Option<String>,
        /// Cases worked on at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Only the first N cases (by confirmation).
        #[arg(long)]
        max_cases: Option<usize>,
        /// The response's rules as JSON (see `civic eiss open-response`).
        #[arg(long)]
        rules: Option<String>,
    },
    /// Public MyData's transfers: each timed from the citizen's consent to
    /// the package verified at the agency, many at once.
    Mydata {
        #[arg(long, default_value_t = 2_000)]
        people: usize,
        #[arg(long, default_value_t = 5_000)]
        transfers: usize,
        /// Transfers in flight at once.
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        #[arg(long, default_value = "./bench-data/mydata")]
        dir: PathBuf,
        /// A PostgreSQL database instead of SQLite in --dir.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Clusters in every mode but the nodes' (that is `bench eiss`): from
    /// interviews, from published routes, from both, with and without
    /// onsets; each scored beside a naive same-place same-day union and the
    /// ceiling of what the mode's rows show.
    Modes {
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        #[arg(long, default_value_t = 14)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "./bench-data/modes")]
        dir: PathBuf,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Capacity: many cases' routes (published elsewhere) in one response,
    /// and the time to recompute its clusters.
    Clusters {
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        #[arg(long, default_value_t = 100_000)]
        cases: usize,
        #[arg(long, default_value = "./bench-data/clusters")]
        dir: PathBuf,
        #[arg(long)]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the whole ledger and check every signed tree head; exits
    /// non-zero naming the first bad record.
    Verify {
        /// Data directory (database and the hub's key).
        #[arg(long, default_value = "./civic-data")]
        data_dir: PathBuf,
        /// A database other than the data directory's SQLite file.
        #[arg(long)]
        database_url: Option<String>,
        /// Hex Ed25519 public key of the hub (default: from the data directory's key).
        #[arg(long)]
        public_key: Option<String>,
        /// Use the public key recorded in the database itself when no other
        /// is at hand: weaker evidence, since whoever can change the
        /// database can change that key.
        #[arg(long)]
        trust_database_key: bool,
        /// A tree head kept outside the database (the JSON of
        /// /api/v1/audit/tree-head); repeatable. Catches records cut from
        /// the end even if the stored tree heads were removed too.
        #[arg(long = "tree-head")]
        tree_heads: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Enrol this node with the hub using a one-time token: writes its
    /// keys (which never leave it), its certificate and a node.toml.
    Enrol {
        /// The hub's API, e.g. https://hub.example:8080
        #[arg(long)]
        hub: String,
        #[arg(long)]
        token: String,
        /// The node's name, as the token was issued for.
        #[arg(long)]
        name: String,
        /// Where the node keeps its keys, certificates, node.toml and data.
        #[arg(long)]
        dir: PathBuf,
        /// The CA certificate the hub's HTTPS certificate is issued by.
        #[arg(long)]
        hub_ca: Option<PathBuf>,
        /// What the node will serve: pings, transactions or taps.
        #[arg(long, default_value = "pings")]
        kind: String,
    },
    /// Serve the node's data to the hub, over mutual TLS, to granted
    /// requests only (see node.toml in the README).
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Issue a token with which the holder's own systems append events to
    /// this node over HTTPS (node.toml's ingest_addr). It is printed once;
    /// the node keeps only its digest.
    IngestToken {
        #[arg(long)]
        config: PathBuf,
        /// Which system the token is for, e.g. skt-billing-loader.
        #[arg(long)]
        name: String,
    },
    /// Append an events file (CSV or .csv.gz, in the node's format) to a
    /// running node over HTTPS, in batches; each batch is acknowledged
    /// only once it is on the node's disk.
    Append {
        /// The node's ingest address, e.g. https://127.0.0.1:9444
        #[arg(long)]
        url: String,
        /// The CA certificate the node's certificate is issued by (ca.pem).
        #[arg(long)]
        ca: PathBuf,
        /// The token from `civic node ingest-token`.
        #[arg(long, env = "CIVIC_INGEST_TOKEN", hide_env_values = true)]
        token: String,
        /// pings, transactions or taps, with the header row.
        #[arg(long)]
        events: Option<PathBuf>,
        /// towers, merchants or stops to add first (all or nothing).
        #[arg(long)]
        places: Option<PathBuf>,
        #[arg(long, default_value_t = 200_000)]
        batch_rows: usize,
        /// Rows of the file already appended (to resume after an error).
        #[arg(long, default_value_t = 0)]
        skip_rows: u64,
    },
    /// Move the events appended since the last compaction into segments
    /// (a serving node also does this by itself as they accumulate).
    Compact {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "pings")]
        kind: String,
    },
    /// What a node's store holds: rows (in segments and appended since the
    /// last compaction), holders, places, segments, imported files.
    Info {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "pings")]
        kind: String,
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Import a node's data (CSV or .csv.gz) into its stores, each all or
    /// nothing; works without a running hub.
    Import {
        #[arg(long)]
        data_dir: PathBuf,
        /// A telco's towers.csv: cell_id,lat,lon
        #[arg(long)]
        towers: Option<PathBuf>,
        /// A telco's pings: subscriber_id,ts,cell_id (repeatable)
        #[arg(long = "pings")]
        pings: Vec<PathBuf>,
        /// A card company's merchants.csv: merchant_id,lat,lon,…
        #[arg(long)]
        merchants: Option<PathBuf>,
        /// A card company's transactions: card_id,ts,merchant_id,… (repeatable)
        #[arg(long = "transactions")]
        transactions: Vec<PathBuf>,
        /// A transit operator's stops.csv: stop_id,lat,lon,…
        #[arg(long)]
        stops: Option<PathBuf>,
        /// A transit operator's taps: card_id,ts,stop_id,… (repeatable)
        #[arg(long = "taps")]
        taps: Vec<PathBuf>,
    },
    /// Answer a batch of exposure windows (query_id,lat,lon,radius_m,t_start,t_end)
    /// from the local store: query_id,count (or with --ids query_id,subscriber_id)
    /// on standard output.
    Exposure {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        queries: PathBuf,
        /// List the subscribers instead of counting them.
        #[arg(long)]
        ids: bool,
        /// Also write each window's latency (query_id,micros) to this file.
        #[arg(long)]
        latencies: Option<PathBuf>,
        /// Which store answers: pings (towers), transactions (merchants) or
        /// taps (subway stations); the answer's ids are subscribers or cards.
        #[arg(long, default_value = "pings")]
        kind: String,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// Write towers, pings, merchants, card transactions, stops, taps,
    /// venues and the ground truth (people, visits, infections, cases,
    /// interviews, clusters) into a directory.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        people: usize,
        #[arg(long, default_value_t = 14)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// First day (local time, KST).
        #[arg(long, default_value = "2020-03-01")]
        start: String,
        /// lat0,lon0,lat1,lon1 (default: Seoul).
        #[arg(long)]
        bbox: Option<String>,
        /// A TOML scenario overriding the defaults (see crates/sim/README.md).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Worker threads (default: all cores); the output does not depend on it.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Compare what the platform found (contacts.csv, clusters.csv,
    /// sources.csv in --found) with the truth of a generated city: precision
    /// and recall of contacts, adjusted Rand index of clusters, accuracy of
    /// sources.
    Score {
        /// The directory `civic sim generate` wrote.
        #[arg(long)]
        truth: PathBuf,
        #[arg(long)]
        found: PathBuf,
        /// A contact overlaps a case at a place for at least this long.
        #[arg(long, default_value_t = 10)]
        min_overlap_minutes: i64,
        /// Contacts are looked for from this many days before symptom onset.
        #[arg(long, default_value_t = 2)]
        lookback_days: i64,
        /// The same place of a true contact: the same venue, or the same
        /// tower's cell (people with a phone: what telcos can see).
        #[arg(long, value_enum, default_value_t = ScoreLevel::Venue)]
        level: ScoreLevel,
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScoreLevel {
    Venue,
    Tower,
}

#[derive(Args)]
struct Target {
    /// Configuration file of the hub to administer.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Output format (default: table on a terminal, JSON otherwise).
    #[arg(long, global = true, value_enum)]
    format: Option<Format>,
}

#[derive(Subcommand)]
enum AdminCommand {
    Institution {
        #[command(subcommand)]
        command: InstitutionCommand,
    },
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    Node {
        #[command(subcommand)]
        command: AdminNodeCommand,
    },
}

#[derive(Subcommand)]
enum AdminNodeCommand {
    /// Issue a one-time enrolment token for a node of an institution.
    Token {
        #[arg(long)]
        institution: i64,
        #[arg(long)]
        name: String,
        /// Hours the token is valid (1-168).
        #[arg(long, default_value_t = 24)]
        valid_hours: i64,
    },
    /// Record where an enrolled node answers the hub, what it holds and
    /// its holder code in case registers.
    Route {
        #[arg(long)]
        name: String,
        /// e.g. https://10.0.0.5:9443
        #[arg(long)]
        url: String,
        /// pings, transactions or taps.
        #[arg(long)]
        kind: String,
        /// The holder's code in case registers, e.g. skt or shinhan.
        #[arg(long)]
        code: String,
    },
}

#[derive(Subcommand)]
enum InstitutionCommand {
    /// Register an institution.
    Create {
        #[arg(long)]
        name: String,
        /// hub_operator, health_authority, police, telco, card_company,
        /// transit_operator, ministry, local_government, public_institution, using_agency
        #[arg(long)]
        kind: String,
    },
    List,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; a person's password is read from standard input.
    Create {
        #[arg(long)]
        institution: i64,
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        /// Repeatable: investigator:REGION, approver, police_location_officer,
        /// security_auditor, mydata_operator, support_agent, analyst, administrator
        #[arg(long = "duty")]
        duties: Vec<String>,
        /// A machine client (a node, an agency's system): no password, it
        /// signs in with API tokens only.
        #[arg(long)]
        machine_client: bool,
    },
    List {
        #[arg(long)]
        institution: i64,
    },
    /// Replace a user's duties.
    Duties {
        #[arg(long)]
        user: i64,
        #[arg(long = "duty")]
        duties: Vec<String>,
    },
    /// Remove a user's second factor; she enrols a new one at next sign-in.
    ResetTotp {
        #[arg(long)]
        user: i64,
    },
    /// Lift a lock-out after repeated failed sign-ins.
    Unlock {
        #[arg(long)]
        user: i64,
    },
    /// Set a new password, read from standard input.
    SetPassword {
        #[arg(long)]
        user: i64,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue an API token for a machine-client user; the secret is printed once.
    Issue {
        #[arg(long)]
        user: i64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        valid_days: Option<i64>,
    },
    List {
        #[arg(long)]
        institution: i64,
    },
    Revoke {
        #[arg(long)]
        id: i64,
    },
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("CIVIC_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn env_vars() -> Vec<(String, String)> {
    std::env::vars().collect()
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(Config::load(path, env_vars())?)
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("give the password on standard input, e.g. `echo '…' | civic login --username …`");
    }
    Ok(password)
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if !cli.command.serves() {
        quiet_on_closed_pipe();
    }
    if let Err(e) = run(cli).await {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

impl Command {
    /// Whether the command runs a server (its output is logs).
    fn serves(&self) -> bool {
        matches!(
            self,
            Command::Demo { .. }
                | Command::Serve { .. }
                | Command::Node {
                    command: NodeCommand::Serve { .. }
                }
        )
    }
}

/// A command whose reader goes away (`civic audit verify | head -1`) ends
/// as Unix tools do, by SIGPIPE, silently: Rust ignores the signal, so
/// every later `println!` would panic on the broken pipe. Servers keep
/// ignoring it (their output is logs; their sockets never raise it).
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default touches no
    // memory of ours; signal(2) is safe to call from any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

async fn run(cli: Cli) -> Result<()> {
    let log_override = cli.log_format.map(|f| match f {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    match cli.command {
        Command::Demo {
            addr,
            data_dir,
            sim_people,
            sim_days,
            database_url,
        } => {
            let mut config = load_config(None)?;
            config.addr = addr.to_string();
            config.data_dir = data_dir;
            config.database_url = database_url;
            init_logging(log_override.unwrap_or(config.log_format));
            demo(config, sim_people, sim_days).await
        }
        Command::Serve { config } => {
            let config = load_config(config.as_deref())?;
            init_logging(log_override.unwrap_or(config.log_format));
            serve(config).await
        }
        Command::Migrate { config } => {
            let config = load_config(config.as_deref())?;
            let store = Store::connect(&config.database_url()).await?;
            store.migrate().await?;
            println!("migrated {} database", store.backend());
            Ok(())
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    data_dir,
                    database_url,
                    public_key,
                    trust_database_key,
                    tree_heads,
                },
        } => {
            audit_verify(
                &data_dir,
                database_url,
                public_key,
                trust_database_key,
                &tree_heads,
            )
            .await
        }
        Command::Admin { target, command } => {
            let config = load_config(target.config.as_deref())?;
            let hub = Hub::open(config).await?;
            admin(&hub, Format::resolve(target.format), command).await
        }
        Command::Sim { command } => sim(command),
        Command::Node {
            command:
                NodeCommand::Enrol {
                    hub,
                    token,
                    name,
                    dir,
                    hub_ca,
                    kind,
                },
        } => node_enrol(&hub, &token, &name, &dir, hub_ca.as_deref(), &kind).await,
        Command::Node {
            command:
                NodeCommand::Append {
                    url,
                    ca,
                    token,
                    events,
                    places,
                    batch_rows,
                    skip_rows,
                },
        } => {
            node_append(
                &url,
                &ca,
                &token,
                places.as_deref(),
                events.as_deref(),
                batch_rows,
                skip_rows,
            )
            .await
        }
        Command::Node {
            command: NodeCommand::Serve { config },
        } => {
            init_logging(log_override.unwrap_or(LogFormat::Text));
            let config = civic_node_server::NodeConfig::load(&config)?;
            let running = civic_node_server::serve(config).await?;
            tracing::info!(addr = %running.addr, "node serving the hub over mutual TLS");
            if let Some(ingest) = running.ingest_addr {
                tracing::info!(addr = %ingest, "node taking the holder's batches over HTTPS");
            }
            let handle = running.handle();
            tokio::spawn(async move {
                stop_signal().await;
                handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            running.wait().await?;
            Ok(())
        }
        Command::Node { command } => node(command),
        Command::Login {
            hub,
            username,
            totp,
        } => client::login(&hub, &username, totp).await,
        Command::Logout { hub } => client::logout(&hub).await,
        Command::Eiss {
            hub,
            format,
            command,
        } => eiss::run(&hub, format, command).await,
        Command::Mydata {
            hub,
            format,
            command,
        } => mydata::run(&hub, format, command).await,
        Command::Support {
            hub,
            format,
            command,
        } => support::run(&hub, format, command).await,
        Command::Bench { command } => {
            init_logging(log_override.unwrap_or(LogFormat::Text));
            match command {
                BenchCommand::Eiss {
                    people,
                    days,
                    seed,
                    dir,
                    database_url,
                    parallel,
                    max_cases,
                    rules,
                } => {
                    bench::eiss(bench::EissArgs {
                        people,
                        days,
                        seed,
                        dir,
                        database_url,
                        parallel,
                        max_cases,
                        rules,
                    })
                    .await
                }
                BenchCommand::Modes {
                    people,
                    days,
                    seed,
                    dir,
                    database_url,
                } => bench::modes(&dir, people, days, seed, database_url).await,
                BenchCommand::Clusters {
                    people,
                    cases,
                    dir,
                    database_url,
                } => bench::clusters(&dir, people, cases, database_url).await,
                BenchCommand::Mydata {
                    people,
                    transfers,
                    concurrency,
                    dir,
                    database_url,
                } => {
                    bench::mydata(bench::MydataArgs {
                        people,
                        transfers,
                        concurrency,
                        dir,
                        database_url,
                    })
                    .await
                }
            }
        }
        Command::TotpCode { secret } => {
            let secret = civic_hub::secrets::from_base32(&secret)
                .ok_or_else(|| anyhow!("the secret is not base32"))?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            println!("{}", civic_hub::secrets::totp_code(&secret, now));
            Ok(())
        }
    }
}

async fn start(hub: Hub, config: &Config) -> Result<civic_api::Running> {
    let addr: SocketAddr = config.addr.parse().context("addr")?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(civic_api::tls_config(cert, key).map_err(|e| anyhow!(e))?),
        _ => None,
    };
    civic_api::serve(hub, addr, tls)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Serves until Ctrl-C or SIGTERM, then lets requests finish and signs a
/// final tree head, so that a stopped ledger is wholly under a signature.
async fn until_stopped(hub: &Hub, running: civic_api::Running) -> Result<()> {
    let handle = running.handle();
    tokio::spawn(async move {
        stop_signal().await;
        tracing::info!("stopping");
        handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    running.wait().await?;
    let head = hub.tree_head().await?;
    tracing::info!(tree_size = head.tree_size, "final tree head signed");
    Ok(())
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn serve(config: Config) -> Result<()> {
    let hub = Hub::open(config.clone()).await?;
    // Questions left pending by a stop are asked again, under their ids.
    let pending = hub.resume_collections().await?;
    if pending > 0 {
        tracing::info!(pending, "asking the nodes again what they had not answered");
    }
    let running = start(hub.clone(), &config).await?;
    tracing::info!(url = %running.url(), backend = hub.store.backend(), "hub serving");
    until_stopped(&hub, running).await
}

/// The demo's synthetic city, generated once into `DATA_DIR/city` (again
/// only if asked for another size).
async fn demo_city(data_dir: &Path, people: usize, days: u32) -> Result<civic_sim::Summary> {
    city(&data_dir.join("city"), people, days, 1).await
}

/// A synthetic city in `dir`, generated unless one of this size and seed
/// is there whole.
async fn city(dir: &Path, people: usize, days: u32, seed: u64) -> Result<civic_sim::Summary> {
    if !(1..=10_000_000).contains(&people) || !(1..=366).contains(&days) {
        bail!("--sim-people must be 1-10000000 and --sim-days 1-366");
    }
    let dir = dir.to_path_buf();
    if let Ok(text) = std::fs::read_to_string(dir.join("summary.json")) {
        if let Ok(summary) = serde_json::from_str::<serde_json::Value>(&text) {
            if summary["people"] == people as u64
                && summary["days"] == days
                && summary["seed"] == seed
                // Cities from before the map, or the published view and the
                // setting groups, were written are made again.
                && dir.join("geography.geojson").exists()
                && dir.join("groups.csv").exists()
            {
                return Ok(civic_sim::Summary {
                    people: people as u64,
                    days,
                    pings: summary["pings"].as_u64().unwrap_or(0),
                    cases: summary["cases"].as_u64().unwrap_or(0),
                    ..civic_sim::Summary::default()
                });
            }
        }
    }
    // A run cut short leaves truncated files: no summary until it is whole.
    let _ = std::fs::remove_file(dir.join("summary.json"));
    let params = civic_sim::Params::seoul(
        people,
        days,
        seed,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    tracing::info!(people, days, dir = %dir.display(), "generating the demo's synthetic city");
    let bar = progress_bar(days as u64, "simulating {bar:40} day {pos}/{len}");
    let summary = tokio::task::spawn_blocking(move || {
        civic_sim::generate(&params, &dir, &mut |day, _| bar.set_position(day as u64))
            .inspect(|_| bar.finish_and_clear())
    })
    .await
    .context("the simulator stopped")??;
    Ok(summary)
}

async fn demo(config: Config, sim_people: usize, sim_days: u32) -> Result<()> {
    let hub = Hub::open(config.clone()).await?;
    let mut logins = hub.seed_demo().await?;
    let city = demo_city(&config.data_dir, sim_people, sim_days).await?;
    let nodes = civic_hub::demo_nodes::start(&hub, &config.data_dir).await?;
    hub.seed_geography(&config.data_dir.join("city").join("geography.geojson"))
        .await?;
    hub.seed_demo_catalogue().await?;
    if let Some(citizen) = hub.seed_demo_mydata(&config.data_dir.join("city")).await? {
        logins.push(citizen);
    }
    let (response, cases) = hub
        .seed_demo_response(&config.data_dir.join("city"))
        .await?;
    hub.resume_collections().await?;
    let running = start(hub.clone(), &config).await?;
    let url = running.url();
    println!();
    println!("Civic Data Hub demo is running at {url}");
    println!(
        "  data: {} ({})   API: {url}/api/v1   OpenAPI: {url}/api/openapi.json",
        config.data_dir.display(),
        hub.store.backend()
    );
    println!(
        "  synthetic city: {} people over {} days, {} pings, {} confirmed cases in {}",
        city.people,
        city.days,
        city.pings,
        city.cases,
        config.data_dir.join("city").display()
    );
    println!(
        "  outbreak response {} \"{}\" ({}): {} cases registered with their interviews",
        response.id, response.name, response.status, cases
    );
    println!(
        "  nodes (mutual TLS, certificates from the hub's CA; they answer granted requests only):"
    );
    for n in &nodes {
        println!(
            "    {:<18} {:<16} {:>10} {:<12} https://{}",
            n.name, n.institution, n.events, n.kind, n.running.addr
        );
    }
    println!();
    let rows: Vec<Vec<String>> = logins
        .iter()
        .map(|l| {
            vec![
                l.username.clone(),
                l.password.clone(),
                l.duty.clone(),
                l.institution.clone(),
                l.totp_secret
                    .clone()
                    .unwrap_or_else(|| "(none: no personal data)".into()),
            ]
        })
        .collect();
    output::print(
        Format::Table,
        &["username", "password", "duty", "institution", "TOTP secret"],
        &rows,
        serde_json::Value::Null,
    );
    println!();
    println!(
        "Investigate: civic login --hub {url} --username investigator.seoul --totp $(civic totp-code SECRET) <<< 'PASSWORD'"
    );
    println!(
        "             civic eiss cases --response {}   (then request, decide as approver and police, timeline, contacts, clusters)",
        response.id
    );
    println!("Sign in: curl -s {url}/api/v1/auth/login -H 'content-type: application/json' \\");
    println!("           -d '{{\"username\":\"auditor\",\"password\":\"…\",\"totp\":\"'$(civic totp-code SECRET)'\"}}'");
    println!(
        "MyData: {url}/api/v1/mydata/catalogue (public); mydata.agency applies for an agreement, mydata.nhis reviews it"
    );
    println!(
        "Logins are kept in {}; stop with Ctrl-C.",
        config.data_dir.join("demo-credentials.json").display()
    );
    until_stopped(&hub, running).await
}

async fn audit_verify(
    data_dir: &Path,
    database_url: Option<String>,
    public_key: Option<String>,
    trust_database_key: bool,
    tree_head_files: &[PathBuf],
) -> Result<()> {
    let db_path = data_dir.join("civic.db");
    let url = match database_url {
        Some(url) => url,
        None => {
            if !db_path.exists() {
                bail!(
                    "no database at {} (give --data-dir or --database-url)",
                    db_path.display()
                );
            }
            format!("sqlite://{}", db_path.display())
        }
    };
    let mut witnesses = Vec::new();
    for file in tree_head_files {
        witnesses.push(read_tree_head(file)?);
    }
    let store = Store::connect(&url).await?;
    let (key, source) = match public_key {
        Some(hex) => (parse_key(&hex)?, "--public-key"),
        None => match HubKeys::public_key_in(data_dir)? {
            Some(key) => (key, "the data directory's key"),
            None if trust_database_key => {
                let hex = store
                    .meta(civic_hub::ledger::PUBLIC_KEY_META)
                    .await?
                    .ok_or_else(|| anyhow!("the database records no public key"))?;
                eprintln!("warning: checking signatures with the key recorded in the database itself; --public-key gives independent evidence");
                (parse_key(&hex)?, "the database's own record")
            }
            None => bail!(
                "no trusted public key: give --public-key HEX, or a --data-dir holding the hub's key (--trust-database-key uses the database's own record, which proves less)"
            ),
        },
    };
    let total = civic_store::AuditStore::count_audit_records(&store).await?;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("verifying {bar:40} {pos}/{len} records ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result = verify_ledger(&store, &key, &witnesses, |n| {
        if n % 1024 == 0 {
            bar.set_position(n)
        }
    })
    .await;
    bar.finish_and_clear();
    let report = result?;
    println!(
        "ledger verified: {} records, root {}, {} signed tree head{} checked with {} ({}){}",
        report.records,
        civic_ledger::to_hex(&report.root),
        report.tree_heads,
        if report.tree_heads == 1 { "" } else { "s" },
        source,
        report.key_id,
        if report.unsigned_tail > 0 {
            format!(
                "; the newest {} records are not yet under a signed tree head",
                report.unsigned_tail
            )
        } else {
            String::new()
        }
    );
    let exchanged = civic_hub::ledger::verify_exchange_log(&store).await?;
    println!("exchange log verified: {exchanged} entries in one unbroken chain");
    Ok(())
}

fn node(command: NodeCommand) -> Result<()> {
    use civic_node::{EventStore, ExposureQuery, Kind, TowerSelection};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    match command {
        NodeCommand::Serve { .. } | NodeCommand::Enrol { .. } | NodeCommand::Append { .. } => {
            bail!("handled by the async runtime")
        }
        NodeCommand::IngestToken { config, name } => {
            let config = civic_node_server::NodeConfig::load(&config)?;
            let token = civic_node_server::ingest::issue_token(&config.data_dir, &name)?;
            println!("{token}");
            match &config.ingest_addr {
                Some(addr) => eprintln!(
                    "ingest token for {name}: shown once; send it as Authorization: Bearer to https://{addr}{}",
                    civic_node_server::ingest::EVENTS_PATH
                ),
                None => eprintln!(
                    "ingest token for {name}: shown once; set ingest_addr in node.toml to open the ingest listener"
                ),
            }
            Ok(())
        }
        NodeCommand::Info {
            data_dir,
            kind,
            format,
        } => {
            let kind = Kind::parse(&kind)
                .ok_or_else(|| anyhow!("--kind must be pings, transactions or taps"))?;
            let store = EventStore::open(&data_dir, kind)?;
            let facts = [
                ("rows", store.ping_count().to_string()),
                ("appended since compaction", store.tail_len().to_string()),
                ("holders", store.subscriber_count().to_string()),
                ("places", store.towers().len().to_string()),
                ("segments", store.segment_count().to_string()),
                ("imported files", store.imported_files().len().to_string()),
                ("on disk", human_bytes(store.size_on_disk())),
            ];
            let json = serde_json::json!({
                "kind": kind.dir_name(),
                "rows": store.ping_count(),
                "appended_since_compaction": store.tail_len(),
                "holders": store.subscriber_count(),
                "places": store.towers().len(),
                "segments": store.segment_count(),
                "imported": store.imported_files(),
                "bytes_on_disk": store.size_on_disk(),
            });
            let rows: Vec<Vec<String>> = facts
                .iter()
                .map(|(k, v)| vec![(*k).to_owned(), v.clone()])
                .collect();
            output::print(Format::resolve(format), &["", kind.dir_name()], &rows, json);
            Ok(())
        }
        NodeCommand::Compact { data_dir, kind } => {
            let kind = Kind::parse(&kind)
                .ok_or_else(|| anyhow!("--kind must be pings, transactions or taps"))?;
            let mut store = EventStore::open(&data_dir, kind)?;
            let moved = store.compact()?;
            println!(
                "{}: compacted {moved} appended rows into segments; the store holds {} rows, {} on disk",
                kind.dir_name(),
                store.ping_count(),
                human_bytes(store.size_on_disk())
            );
            Ok(())
        }
        NodeCommand::Import {
            data_dir,
            towers,
            pings,
            merchants,
            transactions,
            stops,
            taps,
        } => {
            let work = [
                (Kind::Pings, towers, pings),
                (Kind::Transactions, merchants, transactions),
                (Kind::Taps, stops, taps),
            ];
            if work
                .iter()
                .all(|(_, places, events)| places.is_none() && events.is_empty())
            {
                bail!("nothing to import: give --towers/--pings, --merchants/--transactions or --stops/--taps");
            }
            for (kind, places, events) in work {
                if places.is_none() && events.is_empty() {
                    continue;
                }
                let mut store = EventStore::open(&data_dir, kind)?;
                let total: u64 = places
                    .iter()
                    .chain(&events)
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum();
                let read = Arc::new(AtomicU64::new(0));
                let bar = progress_bar(
                    total,
                    "importing {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
                );
                let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
                let watcher = {
                    let (bar, read) = (bar.clone(), read.clone());
                    std::thread::spawn(move || {
                        while done_rx
                            .recv_timeout(std::time::Duration::from_millis(200))
                            .is_err()
                        {
                            bar.set_position(read.load(Ordering::Relaxed));
                        }
                    })
                };
                let started = std::time::Instant::now();
                let paths: Vec<&Path> = events.iter().map(PathBuf::as_path).collect();
                let result = store.import(places.as_deref(), &paths, read);
                let _ = done_tx.send(());
                let _ = watcher.join();
                bar.finish_and_clear();
                let report = result?;
                let secs = started.elapsed().as_secs_f64();
                for (path, first) in &report.already_imported {
                    if first.at > 0 {
                        println!(
                            "{path}: already imported ({} rows, sha256 {}…, at {}): left out",
                            first.events,
                            &first.sha256[..12],
                            time::OffsetDateTime::from_unix_timestamp(first.at)
                                .map(|t| t.to_string())
                                .unwrap_or_default()
                        );
                    } else {
                        println!("{path}: the same file is named twice in this import: left out");
                    }
                }
                println!(
                    "{}: imported {} rows ({:.2} M/s), {} new holders, {} new places into {} segments in {:.1} s; the store holds {} rows, {} on disk",
                    kind.dir_name(),
                    report.pings,
                    report.pings as f64 / secs.max(1e-9) / 1e6,
                    report.subscribers_added,
                    report.towers_added,
                    report.segments,
                    secs,
                    store.ping_count(),
                    human_bytes(store.size_on_disk())
                );
            }
            Ok(())
        }
        NodeCommand::Exposure {
            data_dir,
            queries,
            ids,
            latencies,
            kind,
        } => {
            let kind = Kind::parse(&kind)
                .ok_or_else(|| anyhow!("--kind must be pings, transactions or taps"))?;
            let store = EventStore::open(&data_dir, kind)?;
            if store.ping_count() == 0 {
                bail!(
                    "no {} in {}: run `civic node import` first",
                    kind.dir_name(),
                    data_dir.display()
                );
            }
            let mut lines = civic_node::csv::Lines::open(
                &queries,
                &["query_id", "lat", "lon", "radius_m", "t_start", "t_end"],
                Arc::new(AtomicU64::new(0)),
            )?;
            let mut batch = Vec::new();
            while lines.advance()? {
                let f: Vec<&[u8]> = civic_node::csv::fields(lines.current()).collect();
                let parsed = (|| {
                    let id = civic_node::csv::parse_u64(f.first()?)?;
                    let lat = civic_node::csv::parse_f64(f.get(1)?)
                        .filter(|v| (-90.0..=90.0).contains(v))?;
                    let lon = civic_node::csv::parse_f64(f.get(2)?)
                        .filter(|v| (-180.0..=180.0).contains(v))?;
                    let radius = civic_node::csv::parse_f64(f.get(3)?)
                        .filter(|v| (0.0..=100_000.0).contains(v))?;
                    let t0 = civic_node::csv::parse_u64(f.get(4)?)? as i64;
                    let t1 = civic_node::csv::parse_u64(f.get(5)?)? as i64;
                    (t0 <= t1).then_some((
                        id,
                        ExposureQuery {
                            towers: TowerSelection::Near {
                                lat,
                                lon,
                                radius_m: radius,
                            },
                            t_start: t0,
                            t_end: t1,
                        },
                    ))
                })();
                match parsed {
                    Some(q) => batch.push(q),
                    None => bail!(lines.bad("expected query_id, lat, lon (degrees), radius_m (0-100000), t_start <= t_end (Unix seconds)")),
                }
            }
            let started = std::time::Instant::now();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            use std::io::Write;
            if ids {
                let holder = if kind == Kind::Pings {
                    "subscriber_id"
                } else {
                    "card_id"
                };
                writeln!(out, "query_id,{holder}")?;
            } else {
                writeln!(out, "query_id,count")?;
            }
            let mut timings = Vec::with_capacity(batch.len());
            for (id, q) in &batch {
                let t = std::time::Instant::now();
                if ids {
                    let answers = store.exposure(q);
                    timings.push((id, t.elapsed()));
                    for a in answers {
                        writeln!(out, "{id},{}", a.subscriber)?;
                    }
                } else {
                    let count = store.exposure_count(q);
                    timings.push((id, t.elapsed()));
                    writeln!(out, "{id},{count}")?;
                }
            }
            out.flush()?;
            if let Some(path) = latencies {
                let text: String = std::iter::once("query_id,micros\n".to_owned())
                    .chain(
                        timings
                            .iter()
                            .map(|(id, d)| format!("{id},{:.1}\n", d.as_secs_f64() * 1e6)),
                    )
                    .collect();
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!(
                "{} exposure windows answered in {:.1} ms",
                batch.len(),
                started.elapsed().as_secs_f64() * 1000.0
            );
            Ok(())
        }
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{n} B"),
    }
}

fn sim(command: SimCommand) -> Result<()> {
    match command {
        SimCommand::Generate {
            people,
            days,
            seed,
            out,
            start,
            bbox,
            scenario,
            threads,
        } => {
            if !(1..=10_000_000).contains(&people) {
                bail!("--people must be 1-10000000");
            }
            if !(1..=366).contains(&days) {
                bail!("--days must be 1-366");
            }
            let start = time::Date::parse(
                &start,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| anyhow!("--start {start:?} is not a date like 2020-03-01"))?;
            let bbox = match bbox {
                Some(raw) => civic_sim::BBox::parse(&raw).map_err(|e| anyhow!(e))?,
                None => civic_sim::BBox::SEOUL,
            };
            let scenario = match scenario {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    civic_sim::Scenario::from_toml(&text).map_err(|e| anyhow!(e))?
                }
                None => civic_sim::Scenario::default(),
            };
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            let params = civic_sim::Params {
                people,
                days,
                seed,
                start,
                bbox,
                scenario,
                threads,
            };
            let bar = progress_bar(
                days as u64,
                "simulating {bar:40} day {pos}/{len} ({elapsed}, {eta} left)",
            );
            let started = std::time::Instant::now();
            let summary =
                civic_sim::generate(&params, &out, &mut |day, _| bar.set_position(day as u64))
                    .with_context(|| format!("writing into {}", out.display()))?;
            bar.finish_and_clear();
            println!(
                "{} people, {} days: {} pings, {} card transactions, {} taps, {} visits; {} infections, {} cases in {} clusters; {:.1} s -> {}",
                summary.people,
                summary.days,
                summary.pings,
                summary.transactions,
                summary.taps,
                summary.visits,
                summary.infections,
                summary.cases,
                summary.clusters,
                started.elapsed().as_secs_f64(),
                out.display()
            );
            Ok(())
        }
        SimCommand::Score {
            truth,
            found,
            min_overlap_minutes,
            lookback_days,
            level,
            format,
        } => sim_score(
            &truth,
            &found,
            civic_sim::score::Rules {
                min_overlap_minutes,
                lookback_days,
                level: match level {
                    ScoreLevel::Venue => civic_sim::score::Level::Venue,
                    ScoreLevel::Tower => civic_sim::score::Level::Tower,
                },
            },
            Format::resolve(format),
        ),
    }
}

fn sim_score(
    truth: &Path,
    found: &Path,
    rules: civic_sim::score::Rules,
    format: Format,
) -> Result<()> {
    if !(0..=24 * 60).contains(&rules.min_overlap_minutes)
        || !(0..=30).contains(&rules.lookback_days)
    {
        bail!("--min-overlap-minutes must be 0-1440 and --lookback-days 0-30");
    }
    let scores = civic_sim::score::score(truth, found, rules)?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let f = |v: f64| format!("{v:.3}");
    if let Some(c) = &scores.contacts {
        rows.push(vec![
            "contacts precision".into(),
            f(c.precision),
            format!("{} of {} found are true", c.true_positives, c.found),
        ]);
        rows.push(vec![
            "contacts recall".into(),
            f(c.recall),
            format!("{} of {} true contacts found", c.true_positives, c.truth),
        ]);
        rows.push(vec!["contacts F1".into(), f(c.f1), String::new()]);
    }
    if let Some(c) = &scores.clusters {
        rows.push(vec![
            "clusters adjusted Rand index".into(),
            f(c.adjusted_rand_index),
            format!(
                "{} cases; {} clusters found, {} true",
                c.cases, c.found_clusters, c.truth_clusters
            ),
        ]);
        if let (Some(ari), Some(groups)) = (c.groups_adjusted_rand_index, c.truth_groups) {
            rows.push(vec![
                "clusters adjusted Rand index, setting groups".into(),
                f(ari),
                format!("{groups} groups of two or more, as health authorities name them"),
            ]);
        }
    }
    if let Some(s) = &scores.sources {
        rows.push(vec![
            "source accuracy".into(),
            f(s.accuracy),
            format!("{} of {} claimed sources right", s.correct, s.claims),
        ]);
    }
    output::print(
        format,
        &["measure", "value", "detail"],
        &rows,
        serde_json::to_value(&scores)?,
    );
    Ok(())
}

/// A TLS client configuration that trusts only the CA certificate(s) in
/// `ca_path`.
fn trusting(ca_path: &Path) -> Result<rustls::ClientConfig> {
    let pem = std::fs::read(ca_path).with_context(|| format!("reading {}", ca_path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", ca_path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", ca_path.display());
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert)?;
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// `civic node append`: sends an events file to a node's ingest listener
/// in batches, each acknowledged only once the node has it on disk.
async fn node_append(
    url: &str,
    ca: &Path,
    token: &str,
    places: Option<&Path>,
    events: Option<&Path>,
    batch_rows: usize,
    skip_rows: u64,
) -> Result<()> {
    use std::io::BufRead;
    if batch_rows == 0 {
        bail!("--batch-rows must be at least 1");
    }
    if !url.starts_with("https://") {
        bail!("--url must be the node's https:// ingest address (node.toml's ingest_addr)");
    }
    if places.is_none() && events.is_none() {
        bail!("nothing to send: give --places and/or --events");
    }
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(trusting(ca)?)
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(600))
        .build()?;
    let refused = |what: &str, detail: String| anyhow!("the node refused the {what}: {detail}");
    let detail = |response: reqwest::Response| async move {
        let status = response.status();
        response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string())
    };
    if let Some(places) = places {
        let body =
            std::fs::read(places).with_context(|| format!("reading {}", places.display()))?;
        let mut request = client
            .post(format!(
                "{}{}",
                url.trim_end_matches('/'),
                civic_node_server::ingest::PLACES_PATH
            ))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(body);
        if places.extension().is_some_and(|e| e == "gz") {
            request = request.header("content-encoding", "gzip");
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow!("the node did not answer: {e}"))?;
        if !response.status().is_success() {
            return Err(refused("places", detail(response).await));
        }
        let report: serde_json::Value = response.json().await?;
        println!(
            "added {} places; the node knows {}",
            report["added"], report["places"]
        );
    }
    let Some(events) = events else {
        return Ok(());
    };
    let endpoint = format!(
        "{}{}",
        url.trim_end_matches('/'),
        civic_node_server::ingest::EVENTS_PATH
    );
    let file =
        std::fs::File::open(events).with_context(|| format!("reading {}", events.display()))?;
    let source_name = std::fs::canonicalize(events)
        .unwrap_or_else(|_| events.to_path_buf())
        .display()
        .to_string();
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = civic_node::csv::Counting {
        inner: file,
        counter: read.clone(),
    };
    let mut lines: Box<dyn BufRead> = if events.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::new(counted),
        )))
    } else {
        Box::new(std::io::BufReader::new(counted))
    };
    let mut header = String::new();
    lines
        .read_line(&mut header)
        .with_context(|| format!("reading {}", events.display()))?;
    if header.trim().is_empty() {
        bail!("{} is empty: expected a header row", events.display());
    }
    let bar = progress_bar(
        size,
        "appending {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    );
    let (mut sent, mut skipped, mut line) = (0u64, 0u64, String::new());
    loop {
        let mut batch = header.clone();
        let mut rows = 0usize;
        while rows < batch_rows {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            if skipped < skip_rows {
                skipped += 1;
                continue;
            }
            batch.push_str(line.trim_end_matches(['\r', '\n']));
            batch.push('\n');
            rows += 1;
        }
        if rows == 0 {
            break;
        }
        let resume = skip_rows + sent;
        // The batch's id, the same for every retry of it (and for the same
        // rows of the same file sent again later): the node appends it once.
        let id = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(source_name.as_bytes());
            h.update(resume.to_le_bytes());
            h.update(batch.as_bytes());
            data_encoding::HEXLOWER.encode(&h.finalize()[..16])
        };
        let mut wait = std::time::Duration::from_secs(1);
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let sent_now = client
                .post(&endpoint)
                .bearer_auth(token)
                .header("content-type", "text/csv")
                .header(civic_node_server::ingest::BATCH_ID_HEADER, id.as_str())
                .body(batch.clone())
                .send()
                .await;
            let retry = match &sent_now {
                Ok(r) => r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE,
                Err(_) => true,
            };
            if !retry || attempt >= 6 {
                break sent_now;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(30));
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                bar.abandon();
                bail!(
                    "the node did not answer ({e}); {sent} rows were appended; run the same command with --skip-rows {resume} to go on (a batch the node kept is recognised, not doubled)"
                );
            }
        };
        if !response.status().is_success() {
            bar.abandon();
            let detail = detail(response).await;
            bail!(
                "the node refused the batch of rows {}–{}: {detail}; {sent} rows before it were appended (resume with --skip-rows {resume})",
                resume + 1,
                resume + rows as u64
            );
        }
        sent += rows as u64;
        bar.set_position(read.load(std::sync::atomic::Ordering::Relaxed));
    }
    bar.finish_and_clear();
    println!("appended {sent} rows to {url}");
    Ok(())
}

/// A progress bar on a terminal; nothing when output is piped.
fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// A tree head as saved from `/api/v1/audit/tree-head`, or bare.
fn read_tree_head(path: &Path) -> Result<civic_ledger::SignedTreeHead> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let head = value.get("tree_head").cloned().unwrap_or(value);
    serde_json::from_value(head).with_context(|| format!("{} holds no tree head", path.display()))
}

fn parse_key(hex: &str) -> Result<ed25519_dalek::VerifyingKey> {
    let bytes: [u8; 32] = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.trim().as_bytes())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow!("the public key must be 64 hex digits"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| anyhow!("the public key is not a valid Ed25519 key"))
}

async fn admin(hub: &Hub, format: Format, command: AdminCommand) -> Result<()> {
    let ctx = Ctx::local_operator();
    match command {
        AdminCommand::Institution { command } => match command {
            InstitutionCommand::Create { name, kind } => {
                let i = hub.create_institution(&ctx, &name, &kind).await?;
                println!("created institution {} ({}, {})", i.id, i.name, i.kind);
            }
            InstitutionCommand::List => {
                let list = hub.list_institutions(&ctx).await?;
                let rows = list
                    .iter()
                    .map(|i| vec![i.id.to_string(), i.name.clone(), i.kind.to_string()])
                    .collect::<Vec<_>>();
                output::print(
                    format,
                    &["id", "name", "kind"],
                    &rows,
                    serde_json::to_value(&list)?,
                );
            }
        },
        AdminCommand::User { command } => match command {
            UserCommand::Create {
                institution,
                username,
                display_name,
                duties,
                machine_client,
            } => {
                let password = if machine_client {
                    None
                } else {
                    Some(read_password()?)
                };
                let u = hub
                    .create_user(
                        &ctx,
                        InstitutionId(institution),
                        UserRequest {
                            username,
                            display_name,
                            password,
                            duties,
                            machine_client,
                        },
                    )
                    .await?;
                println!("created user {} ({})", u.id, u.username);
            }
            UserCommand::List { institution } => {
                let users = hub.list_users(&ctx, InstitutionId(institution)).await?;
                let rows = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.to_string(),
                            u.username.clone(),
                            u.display_name.clone(),
                            u.duties
                                .iter()
                                .map(|d| d.to_string())
                                .collect::<Vec<_>>()
                                .join(" "),
                            u.totp_enabled.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                let json = serde_json::Value::Array(
                    users
                        .iter()
                        .map(|u| {
                            serde_json::json!({"id": u.id, "username": u.username, "display_name": u.display_name,
                                "duties": u.duties, "second_factor_enrolled": u.totp_enabled})
                        })
                        .collect(),
                );
                output::print(
                    format,
                    &["id", "username", "display name", "duties", "TOTP"],
                    &rows,
                    json,
                );
            }
            UserCommand::Duties { user, duties } => {
                let u = hub.set_duties(&ctx, UserId(user), &duties).await?;
                println!(
                    "user {} now holds: {}",
                    u.username,
                    u.duties
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            UserCommand::ResetTotp { user } => {
                hub.reset_second_factor(&ctx, UserId(user)).await?;
                println!("second factor of user {user} removed; their sessions are ended");
            }
            UserCommand::Unlock { user } => {
                hub.unlock_user(&ctx, UserId(user)).await?;
                println!("user {user} unlocked");
            }
            UserCommand::SetPassword { user } => {
                let password = read_password()?;
                hub.set_password(&ctx, UserId(user), &password).await?;
                println!("password of user {user} changed");
            }
        },
        AdminCommand::Node {
            command:
                AdminNodeCommand::Token {
                    institution,
                    name,
                    valid_hours,
                },
        } => {
            let (token, expires_at) = hub
                .issue_enrolment_token(&ctx, InstitutionId(institution), &name, Some(valid_hours))
                .await?;
            println!("{token}");
            eprintln!("enrolment token for node {name}, valid until {expires_at}; it works once");
        }
        AdminCommand::Node {
            command:
                AdminNodeCommand::Route {
                    name,
                    url,
                    kind,
                    code,
                },
        } => {
            hub.register_node(&ctx, &name, &url, &kind, &code).await?;
            println!("node {name} answers at {url} ({kind}, code {code})");
        }
        AdminCommand::Token { command } => match command {
            TokenCommand::Issue {
                user,
                name,
                valid_days,
            } => {
                let owner = civic_store::UserStore::user(&hub.store, UserId(user))
                    .await?
                    .ok_or_else(|| anyhow!("user {user} was not found"))?;
                let issued = hub
                    .issue_api_token(&ctx, owner.institution, UserId(user), &name, valid_days)
                    .await?;
                println!("{}", issued.secret);
                eprintln!(
                    "API token {} issued; the secret above is shown only once",
                    issued.token.id
                );
            }
            TokenCommand::List { institution } => {
                let tokens = hub
                    .list_api_tokens(&ctx, InstitutionId(institution))
                    .await?;
                let rows = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.user.to_string(),
                            t.name.clone(),
                            t.revoked.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::print(
                    format,
                    &["id", "user", "name", "revoked"],
                    &rows,
                    serde_json::to_value(&tokens)?,
                );
            }
            TokenCommand::Revoke { id } => {
                hub.revoke_api_token(&ctx, ApiTokenId(id)).await?;
                println!("API token {id} revoked");
            }
        },
    }
    Ok(())
}

/// Enrols a node: keys made here, a CSR and the public signing key sent
/// with the token, the certificate and a node.toml written back.
async fn node_enrol(
    hub: &str,
    token: &str,
    name: &str,
    dir: &Path,
    hub_ca: Option<&Path>,
    kind: &str,
) -> Result<()> {
    if civic_node::Kind::parse(kind).is_none() && kind != "records" {
        bail!("--kind must be pings, transactions, taps or records");
    }
    if dir.join("node.pem").exists() {
        bail!(
            "{} already holds an enrolled node (node.pem)",
            dir.display()
        );
    }
    let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if hub.starts_with("https://") {
        let ca_path = hub_ca.ok_or_else(|| {
            anyhow!("give --hub-ca: the CA certificate the hub's HTTPS certificate is issued by")
        })?;
        client = client.use_preconfigured_tls(trusting(ca_path)?);
    } else if !(hub.starts_with("http://127.")
        || hub.starts_with("http://localhost")
        || hub.starts_with("http://[::1]"))
    {
        bail!("enrol over https: a token must not cross a network in the clear (plain http only on loopback)");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (tls_key, csr) = civic_exchange::trust::new_request(name)?;
    let signing = civic_node_server::load_or_create_key(&dir.join("node-signing.key"))?;
    let response = client
        .build()?
        .post(format!("{}/api/v1/nodes/enrol", hub.trim_end_matches('/')))
        .json(&serde_json::json!({
            "token": token,
            "name": name,
            "csr": csr,
            "signing_key": data_encoding::HEXLOWER.encode(signing.verifying_key().as_bytes()),
        }))
        .send()
        .await
        .with_context(|| format!("reaching the hub at {hub}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .context("the hub's answer is not JSON")?;
    if !status.is_success() {
        bail!(
            "the hub refused: {}",
            body["detail"].as_str().unwrap_or("no reason given")
        );
    }
    let field = |k: &str| {
        body[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the hub's answer lacks {k}"))
    };
    let (certificate, ca, holder, hub_name, hub_key) = (
        field("certificate")?,
        field("ca")?,
        field("institution")?,
        field("hub_name")?,
        field("hub_key")?,
    );
    let enrolment = civic_node_server::Enrolment {
        name,
        holder: &holder,
        kind,
        // A records node's credentials name the hub's page of its keys.
        issuer_url: (kind == "records")
            .then(|| format!("{}/api/v1/mydata/issuers/{name}", hub.trim_end_matches('/'))),
        addr: "127.0.0.1:9443",
        certificate: &certificate,
        ca: &ca,
        tls_key_pem: &tls_key,
        hub_name: &hub_name,
        hub_key: &hub_key,
        gives: Default::default(),
    };
    let config = civic_node_server::write_enrolment(dir, &enrolment)?;
    println!(
        "enrolled {name} into {}; serve with `civic node serve --config {}`",
        dir.display(),
        config.display()
    );
    Ok(())
}

/// Writes a file only its owner can read (keys, personal data).
pub(crate) fn write_owner_only(path: &Path, text: &str) -> Result<()> {
    civic_node_server::write_owner_only(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
