//! `civic`: the one binary of Civic Data Hub. It parses arguments and calls
//! the hub; errors end as one line on stderr and a non-zero exit.

mod admin;
use civic_client::output::progress_bar;
use civic_client::{client, output};
mod audit;
mod bench;
mod node;
mod sim;

/// mimalloc instead of the C library's allocator: a server that makes
/// and drops many small values per request (JSON, entities, rows) runs
/// faster on it and holds less memory that it no longer uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{anyhow, Context, Result};

use civic_hub::config::LogFormat;

use civic_hub::{Config, Hub};

use civic_store::Store;

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
        /// Start the city's sensors' publisher: off, the broker's
        /// default tenant stays empty (as a fresh broker is for the ETSI
        /// suite's runs, `bench/ngsi-ld.sh`).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        city_sensors: bool,
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
        command: audit::AuditCommand,
    },
    /// Institutions, users, duties, second factors and API tokens.
    Admin {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// The synthetic city and outbreak: generate data with ground truth,
    /// score what the platform found against it.
    Sim {
        #[command(subcommand)]
        command: sim::SimCommand,
    },
    /// An institution node's own data: import, and local exposure batches.
    Node {
        #[command(subcommand)]
        command: node::NodeCommand,
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
        command: civic_investigation::cli::EissCommand,
    },
    /// Public MyData: the catalogue (public), publishing in it, and the
    /// linkage consultation between holders and agencies.
    Mydata {
        #[command(flatten)]
        hub: client::HubArgs,
        #[arg(long, value_enum, global = true)]
        format: Option<Format>,
        #[command(subcommand)]
        command: civic_mydata::cli::MydataCommand,
    },
    /// The MyData support centre: tickets, trainings, institutions'
    /// consulting history.
    Support {
        #[command(flatten)]
        hub: client::HubArgs,
        #[arg(long, value_enum, global = true)]
        format: Option<Format>,
        #[command(subcommand)]
        command: civic_mydata::cli::support::SupportCommand,
    },
    /// City data: import files of entities into the NGSI-LD broker
    /// (CSV, JSON, JSON Lines, GeoJSON) and export them, or their
    /// history, as CSV or Parquet.
    City {
        #[command(flatten)]
        hub: client::HubArgs,
        #[command(subcommand)]
        command: civic_citydata::cli::CityCommand,
    },
    /// Measured runs on a synthetic city (see bench/README.md).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Print the current one-time code of a TOTP secret (for the demo).
    TotpCode {
        /// Base32 secret, as printed by `civic demo`.
        secret: String,
    },
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
                    command: node::NodeCommand::Serve { .. }
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
            city_sensors,
        } => {
            let mut config = load_config(None)?;
            config.addr = addr.to_string();
            config.data_dir = data_dir;
            config.database_url = database_url;
            init_logging(log_override.unwrap_or(config.log_format));
            demo(config, sim_people, sim_days, city_sensors).await
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
            civic_api::migrate_applications(&store).await?;
            println!("migrated {} database", store.backend());
            Ok(())
        }
        Command::Audit {
            command:
                audit::AuditCommand::Verify {
                    data_dir,
                    database_url,
                    public_key,
                    trust_database_key,
                    tree_heads,
                },
        } => {
            audit::verify(
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
            let hub = open_hub(config).await?;
            admin::run(&hub, Format::resolve(target.format), command).await
        }
        Command::Sim { command } => sim::run(command),
        Command::Node { command } => node::run(command, log_override).await,
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
        } => civic_investigation::cli::run(&hub, format, command).await,
        Command::Mydata {
            hub,
            format,
            command,
        } => civic_mydata::cli::run(&hub, format, command).await,
        Command::Support {
            hub,
            format,
            command,
        } => civic_mydata::cli::support::run(&hub, format, command).await,
        Command::City { hub, command } => civic_citydata::cli::run(&hub, command).await,
        Command::Bench { command } => {
            init_logging(log_override.unwrap_or(LogFormat::Text));
            bench::run(command).await
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
    let hub = open_hub(config.clone()).await?;
    // (Questions left pending by a stop are asked again as it starts.)
    let running = start(hub.clone(), &config).await?;
    tracing::info!(url = %running.url(), backend = hub.store.backend(), "hub serving");
    until_stopped(&hub, running).await
}

async fn demo(
    mut config: Config,
    sim_people: usize,
    sim_days: u32,
    city_sensors: bool,
) -> Result<()> {
    // City data ingests the demo's sensors from the machine's MQTT broker
    // (unless the configuration names other topics and mappings).
    if config.mqtt_mappings.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let path = config.data_dir.join("city-sensors.toml");
        std::fs::write(&path, civic_demo::sensors::MAPPINGS)
            .with_context(|| format!("cannot write {}", path.display()))?;
        config.mqtt_mappings = Some(path);
        config
            .mqtt_url
            .get_or_insert_with(|| "mqtt://127.0.0.1:1883".into());
        // The demo's sensors write a few hundred instances a minute: its
        // history keeps six hours.
        config.city_history_hours = config.city_history_hours.min(6);
        // Its own helpers, and the ETSI suite's (bench/ngsi-ld.sh), are on
        // loopback.
        config.city_egress_private = true;
        // Tenants are made on first use, open to everything, as the spec
        // and the ETSI suite expect; the demo also sets up closed ones.
        config.city_implicit_tenants = true;
        // Its callers are on this machine, load tests and the suite among
        // them: anonymous reads are not counted.
        config.city_anonymous_requests_per_minute = 0;
    }
    let hub = open_hub(config.clone()).await?;
    let mut logins = civic_demo::seed(&hub).await?;
    let city = sim::demo_city(&config.data_dir, sim_people, sim_days).await?;
    let nodes = civic_demo::nodes::start(&hub, &config.data_dir).await?;
    hub.seed_geography(&config.data_dir.join("city").join("geography.geojson"))
        .await?;
    civic_demo::seed_catalogue(&hub).await?;
    if let Some(citizen) = civic_demo::seed_mydata(&hub, &config.data_dir.join("city")).await? {
        logins.push(citizen);
    }
    let (response, cases) = civic_demo::seed_response(&hub, &config.data_dir.join("city")).await?;
    let running = start(hub.clone(), &config).await?;
    let url = running.url();
    let mqtt = config.mqtt_url.clone().unwrap_or_default();
    let (mqtt_host, mqtt_port) =
        civic_citydata::ingest::parse_mqtt_url(&mqtt).map_err(|e| anyhow!(e))?;
    let sensors = civic_demo::sensors::City::load(&config.data_dir.join("city"))
        .context("the demo city's sensors")?;
    let sensor_count = sensors.sensors();
    let mqtt_up = std::net::TcpStream::connect((mqtt_host.as_str(), mqtt_port)).is_ok();
    let _publisher =
        city_sensors.then(|| civic_demo::sensors::start(sensors, &mqtt_host, mqtt_port));
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
        "City data: an NGSI-LD broker at {url}/ngsi-ld/v1 (default tenant open, no token), e.g. curl {url}/ngsi-ld/v1/types"
    );
    println!(
        "           closed tenant {:?} (Seoul's): sign in as city.seoul, then curl -H 'NGSILD-Tenant: {0}' -H 'Authorization: Bearer TOKEN' …",
        civic_demo::CITY_TENANT
    );
    println!(
        "           {sensor_count} city sensors publish to {mqtt} (topics city/#), ingested as mapped in {}{}",
        config
            .mqtt_mappings
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        if !city_sensors {
            " (off: --city-sensors false)"
        } else if mqtt_up {
            ""
        } else {
            " (no MQTT broker answers there yet: they start when one does)"
        }
    );
    println!(
        "Logins are kept in {}; stop with Ctrl-C.",
        config.data_dir.join("demo-credentials.json").display()
    );
    until_stopped(&hub, running).await
}

/// Opens the hub (migrating the platform's tables) and the applications'
/// tables.
pub(crate) async fn open_hub(config: Config) -> Result<Hub> {
    let hub = Hub::open(config).await?;
    civic_api::migrate_applications(&hub.store).await?;
    Ok(hub)
}
