//! Configuration: a TOML file, overridden by `CIVIC_*` environment
//! variables (`CIVIC_ADDR`, `CIVIC_DATABASE_URL`, … — the key in capitals).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP API listens.
    pub addr: String,
    /// Keys and the embedded database live here.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; default: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// PEM certificate chain and key: with both, the API serves HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub log_format: LogFormat,
    /// A session ends this long after sign-in, …
    pub session_ttl_minutes: i64,
    /// … or after this long without a request.
    pub session_idle_minutes: i64,
    /// Failed sign-ins in a row under one name (or one device) after
    /// which the next attempt waits `sign_in_first_wait_seconds`; each
    /// further failure doubles the wait, up to `sign_in_max_wait_minutes`.
    /// Nothing is ever locked, and a name that exists and one that does
    /// not are treated alike.
    pub sign_in_free_failures: i64,
    /// The same for all names tried from one client address.
    pub sign_in_free_failures_per_address: i64,
    pub sign_in_first_wait_seconds: i64,
    pub sign_in_max_wait_minutes: i64,
    /// Sign-in attempts accepted from one client address per minute.
    pub login_attempts_per_minute: u32,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How often a new tree head is signed when the ledger has grown.
    pub tree_head_interval_seconds: u64,
    /// How long the hub keeps asking a node that does not answer before a
    /// collection counts as failed.
    pub collection_deadline_seconds: u64,
    /// How long a grant stays valid after the approver endorses it: the
    /// police decision and the collection must come within it.
    pub grant_validity_hours: i64,
    /// Questions to nodes in flight at once.
    pub collection_concurrency: usize,
    /// An SMS gateway's HTTP API that takes notices as JSON
    /// (`{"recipient", "text"}`); unset, notices stay in the outbox.
    pub notice_webhook_url: Option<String>,
    /// An XYZ tile server for the web application's maps
    /// (`https://…/{z}/{x}/{y}.png`); unset, maps draw the platform's own
    /// geography alone, with nothing fetched from outside.
    pub map_tile_url: Option<String>,
    /// The hub's address as others reach it (`https://hub.example.gov`),
    /// for the URLs it hands out: MyData issuers' keys and status lists.
    /// Unset: `http://{addr}`.
    pub public_url: Option<String>,
    /// City data: the MQTT broker its sensors publish to
    /// (`mqtt://host:port`); ingestion runs when `mqtt_mappings` is set too.
    pub mqtt_url: Option<String>,
    /// City data: the file (TOML or JSON) mapping MQTT topics to entities.
    pub mqtt_mappings: Option<PathBuf>,
    /// City data: how long the temporal evolution keeps what it
    /// recorded, in hours (counted from when it was written).
    pub city_history_hours: i64,
    /// City data: whether the broker may reach loopback and private
    /// addresses when a caller names them (`@context` URLs, notification
    /// endpoints). Off: only public addresses (the demo turns it on, for
    /// its own helpers and the ETSI suite's).
    pub city_egress_private: bool,
    /// City data: whether a tenant no administrator set up is made on
    /// first use, open to everything (the spec's behaviour, and what the
    /// ETSI suite expects; the demo turns it on). Off: only the tenants
    /// administrators set up exist.
    pub city_implicit_tenants: bool,
    /// City data: requests per minute each session or machine client may
    /// make of the broker (0: no limit).
    pub city_requests_per_minute: u32,
    /// City data: requests per minute each address may make of the
    /// broker's open tenants without a token (0: no limit; the demo).
    pub city_anonymous_requests_per_minute: u32,
    /// City data: the most instances of one attribute a temporal answer
    /// shows; beyond it the answer is cut and says so (206 with a
    /// `Content-Range` of instants, §6.3.10), and the client asks again
    /// for the rest.
    pub city_temporal_instances: u32,
    /// City data: whether entities of the shipped Smart Data Models
    /// (`AirQualityObserved`, `ParkingSpot`, …) are held to their models:
    /// a write that would leave one outside its model is refused. Off:
    /// they are stored as written, like any other type.
    pub city_check_models: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./civic-data"),
            database_url: None,
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Text,
            session_ttl_minutes: 8 * 60,
            session_idle_minutes: 30,
            sign_in_free_failures: 5,
            sign_in_free_failures_per_address: 20,
            sign_in_first_wait_seconds: 1,
            sign_in_max_wait_minutes: 15,
            login_attempts_per_minute: 30,
            max_body_bytes: 1024 * 1024,
            tree_head_interval_seconds: 60,
            collection_deadline_seconds: 600,
            grant_validity_hours: 72,
            collection_concurrency: 16,
            notice_webhook_url: None,
            map_tile_url: None,
            public_url: None,
            mqtt_url: None,
            mqtt_mappings: None,
            city_history_hours: 24 * 30,
            city_egress_private: false,
            city_implicit_tenants: false,
            city_requests_per_minute: 60_000,
            city_anonymous_requests_per_minute: 6_000,
            city_temporal_instances: 10_000,
            city_check_models: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `file` (if given), then applies `CIVIC_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.to_owned(), e))?;
                text.parse().map_err(|e: toml::de::Error| {
                    ConfigError::Invalid(format!("{}: {}", path.display(), e.message()))
                })?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("CIVIC_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if !Self::KEYS.contains(&key.as_str()) {
                continue; // other tools' CIVIC_* variables (e.g. CIVIC_TEST_POSTGRES_URL)
            }
            let value = match (value.parse::<i64>(), value.as_str()) {
                (Ok(n), _) => toml::Value::Integer(n),
                (_, "true") => toml::Value::Boolean(true),
                (_, "false") => toml::Value::Boolean(false),
                _ => toml::Value::String(value),
            };
            table.insert(key, value);
        }
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        config.check()?;
        Ok(config)
    }

    const KEYS: [&'static str; 30] = [
        "city_anonymous_requests_per_minute",
        "city_check_models",
        "city_egress_private",
        "city_temporal_instances",
        "city_implicit_tenants",
        "city_requests_per_minute",
        "city_history_hours",
        "mqtt_url",
        "mqtt_mappings",
        "addr",
        "data_dir",
        "database_url",
        "tls_cert",
        "tls_key",
        "log_format",
        "session_ttl_minutes",
        "session_idle_minutes",
        "sign_in_free_failures",
        "sign_in_free_failures_per_address",
        "sign_in_first_wait_seconds",
        "sign_in_max_wait_minutes",
        "login_attempts_per_minute",
        "max_body_bytes",
        "tree_head_interval_seconds",
        "collection_deadline_seconds",
        "grant_validity_hours",
        "collection_concurrency",
        "notice_webhook_url",
        "map_tile_url",
        "public_url",
    ];

    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("session_ttl_minutes", self.session_ttl_minutes),
            ("session_idle_minutes", self.session_idle_minutes),
            ("sign_in_free_failures", self.sign_in_free_failures),
            (
                "sign_in_free_failures_per_address",
                self.sign_in_free_failures_per_address,
            ),
            (
                "sign_in_first_wait_seconds",
                self.sign_in_first_wait_seconds,
            ),
            ("sign_in_max_wait_minutes", self.sign_in_max_wait_minutes),
        ];
        for (name, value) in positive {
            if value <= 0 {
                return Err(ConfigError::Invalid(format!("{name} must be positive")));
            }
        }
        if !(1..=24 * 28).contains(&self.grant_validity_hours) {
            return Err(ConfigError::Invalid(
                "grant_validity_hours must be 1-672".into(),
            ));
        }
        if self.city_temporal_instances == 0 {
            return Err(ConfigError::Invalid(
                "city_temporal_instances must be positive".into(),
            ));
        }
        if self.collection_concurrency == 0 || self.collection_deadline_seconds == 0 {
            return Err(ConfigError::Invalid(
                "collection_concurrency and collection_deadline_seconds must be positive".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together".into(),
            ));
        }
        if let Some(url) = &self.notice_webhook_url {
            check_webhook_url(url)?;
        }
        if let Some(url) = &self.map_tile_url {
            // It becomes a source in the pages' Content-Security-Policy:
            // one plain host, nothing a header or a policy would misread.
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && ["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p))
                && url
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b";,'\"".contains(&b))
                && !url.contains("{s}")
                && reqwest::Url::parse(&url.replace(['{', '}'], "")).is_ok();
            if !ok {
                return Err(ConfigError::Invalid(
                    "map_tile_url must be an http(s) URL on one host (no {s}) with {z}, {x} and {y}, in plain ASCII".into(),
                ));
            }
        }
        if let Some(url) = &self.mqtt_url {
            let ok = url
                .strip_prefix("mqtt://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
            if !ok {
                return Err(ConfigError::Invalid(
                    "mqtt_url must be mqtt://host:port".into(),
                ));
            }
        }
        if self.city_history_hours < 1 {
            return Err(ConfigError::Invalid(
                "city_history_hours must be positive".into(),
            ));
        }
        if self.mqtt_mappings.is_some() && self.mqtt_url.is_none() {
            return Err(ConfigError::Invalid(
                "mqtt_mappings needs mqtt_url (the broker to subscribe to)".into(),
            ));
        }
        if self.addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "addr {:?} is not HOST:PORT",
                self.addr
            )));
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("civic.db").display()))
    }
}

/// The SMS gateway gets notices — personal data — only over TLS; plain
/// HTTP only to this machine (a gateway's local relay, or a test).
fn check_webhook_url(raw: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::Invalid(format!("notice_webhook_url: {why}"));
    let url = reqwest::Url::parse(raw).map_err(|_| bad("is not a URL"))?;
    let host = url.host_str().ok_or_else(|| bad("has no host"))?;
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(bad(
            "must be https:// (plain http only to a loopback address)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sms_gateway_is_reached_over_tls_or_on_this_machine() {
        for ok in [
            "https://sms.example.go.kr/v1/notices",
            "http://127.0.0.1:9000/notices",
            "http://localhost/n",
            "http://[::1]:80/n",
        ] {
            assert!(check_webhook_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://sms.example.go.kr/",
            "ftp://127.0.0.1/",
            "notices",
            "",
        ] {
            assert!(check_webhook_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tile_server_is_one_plain_host_with_its_placeholders() {
        let with = |url: &str| {
            Config {
                map_tile_url: Some(url.into()),
                ..Config::default()
            }
            .check()
        };
        assert!(with("https://tiles.example.go.kr/{z}/{x}/{y}.png").is_ok());
        for bad in [
            "https://{s}.tiles.example.kr/{z}/{x}/{y}.png",
            "https://tiles.example.kr/{z}/{x}.png",
            "https://tiles.example.kr;script-src */{z}/{x}/{y}",
            "https://타일.kr/{z}/{x}/{y}.png",
            "ftp://tiles.example.kr/{z}/{x}/{y}",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("civic.toml");
        std::fs::write(
            &file,
            "addr = \"127.0.0.1:9000\"\nsession_idle_minutes = 10\n",
        )
        .unwrap();
        let env = [
            ("CIVIC_SESSION_IDLE_MINUTES".to_owned(), "5".to_owned()),
            ("HOME".into(), "/root".into()),
        ];
        let c = Config::load(Some(&file), env).unwrap();
        assert_eq!(c.addr, "127.0.0.1:9000");
        assert_eq!(c.session_idle_minutes, 5);
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn bad_configuration_is_refused() {
        let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(Config::load(None, env("CIVIC_ADDR", "nowhere")).is_err());
        assert!(Config::load(None, env("CIVIC_SIGN_IN_FREE_FAILURES", "0")).is_err());
        assert!(Config::load(None, env("CIVIC_LOG_FORMAT", "xml")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("civic.toml");
        std::fs::write(&file, "colour = \"blue\"\n").unwrap();
        assert!(Config::load(Some(&file), []).is_err());
    }
}
