//! The hub's API as the `civic` command speaks it: `civic login` keeps a
//! session for the hub it signed in to, and commands such as `civic eiss`
//! act as that person, through the same API, policy and audit as the web
//! application. A problem from the hub becomes one line and exit 1.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the hub is and who speaks to it.
#[derive(clap::Args, Clone, Debug)]
pub struct HubArgs {
    /// The hub's address (default: the one signed in to, else
    /// http://127.0.0.1:8080).
    #[arg(long, env = "CIVIC_HUB", global = true)]
    pub hub: Option<String>,
    /// A session or API token (default: the session of `civic login`).
    #[arg(long, env = "CIVIC_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The CA certificate of an HTTPS hub not signed by a public CA.
    #[arg(long, global = true)]
    pub hub_ca: Option<PathBuf>,
}

/// A session kept by `civic login` (readable by its owner only).
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    hub: String,
    username: String,
    token: String,
}

fn session_path() -> PathBuf {
    if let Ok(dir) = std::env::var("CIVIC_HOME") {
        return PathBuf::from(dir).join("session.json");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".config/civic/session.json")
}

/// The device tokens the hubs gave at sign-in, by hub and username: sent
/// at the next sign-in, so that others' failed guesses under the name do
/// not slow this machine's (readable by its owner only).
fn devices_path() -> PathBuf {
    session_path().with_file_name("devices.json")
}

fn device_slot(hub: &str, username: &str) -> String {
    format!(
        "{} {}",
        hub.trim_end_matches('/'),
        username.trim().to_lowercase()
    )
}

fn saved_devices() -> std::collections::BTreeMap<String, String> {
    std::fs::read(devices_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn saved() -> Option<Saved> {
    serde_json::from_slice(&std::fs::read(session_path()).ok()?).ok()
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

fn http(ca: Option<&Path>) -> Result<reqwest::Client> {
    let builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(600));
    let builder = match ca {
        Some(ca) => builder.use_preconfigured_tls(trusting(ca)?),
        None => builder,
    };
    Ok(builder.build()?)
}

impl Client {
    pub fn new(args: &HubArgs) -> Result<Self> {
        let saved = saved();
        let base = args
            .hub
            .clone()
            .or_else(|| saved.as_ref().map(|s| s.hub.clone()))
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let token = args.token.clone().or_else(|| {
            saved
                .filter(|s| s.hub.trim_end_matches('/') == base.trim_end_matches('/'))
                .map(|s| s.token)
        });
        Ok(Self {
            http: http(args.hub_ca.as_deref())?,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends as the person signed in.
    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let Some(token) = &self.token else {
            bail!("not signed in: run `civic login --username NAME` (or give --token)");
        };
        self.dispatch(rb.bearer_auth(token)).await
    }

    /// A request to `path` on the hub, outside `/api/v1` (the NGSI-LD
    /// API), with the token if there is one: such routes may be open.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends; a problem becomes one line.
    pub async fn dispatch(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = rb
            .send()
            .await
            .with_context(|| format!("cannot reach the hub at {}", self.base))?;
        problem(response).await
    }

    /// A public route: no sign-in needed.
    pub async fn get_public<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        Ok(self
            .dispatch(self.http.get(self.url(path)))
            .await?
            .json()
            .await?)
    }

    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        Ok(self
            .send(self.http.get(self.url(path)))
            .await?
            .json()
            .await?)
    }

    pub async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        Ok(self
            .send(self.http.post(self.url(path)).json(body))
            .await?
            .json()
            .await?)
    }

    pub async fn post_csv<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        csv: String,
    ) -> Result<T> {
        let rb = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "text/csv")
            .body(csv);
        Ok(self.send(rb).await?.json().await?)
    }

    pub async fn patch<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        Ok(self
            .send(self.http.patch(self.url(path)).json(body))
            .await?
            .json()
            .await?)
    }

    /// A signed-in GET whose answer is text (CSV).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        Ok(self
            .send(self.http.get(self.url(path)))
            .await?
            .text()
            .await?)
    }

    /// A GET of a full URL the hub handed out (a holder's keys, a status
    /// list): public, as text.
    pub async fn get_url(&self, url: &str) -> Result<String> {
        Ok(self.dispatch(self.http.get(url)).await?.text().await?)
    }

    pub async fn put_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        Ok(self
            .send(self.http.put(self.url(path)).json(body))
            .await?
            .json()
            .await?)
    }

    pub async fn put(&self, path: &str, body: &impl Serialize) -> Result<()> {
        self.send(self.http.put(self.url(path)).json(body)).await?;
        Ok(())
    }
}

/// A problem+json answer as one line.
async fn problem(response: reqwest::Response) -> Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let detail = body["detail"].as_str().unwrap_or("no detail");
    let hint = if body["second_factor_required"] == true {
        " (sign in again with a TOTP code: civic login --totp CODE)"
    } else {
        ""
    };
    Err(anyhow!(
        "the hub answered {}: {detail}{hint}",
        status.as_u16()
    ))
}

/// `civic login`: signs in with a password (standard input, or a prompt)
/// and a TOTP code, and keeps the session for the next commands.
pub async fn login(args: &HubArgs, username: &str, totp: Option<String>) -> Result<()> {
    let base = args
        .hub
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into())
        .trim_end_matches('/')
        .to_owned();
    let password = read_password()?;
    let mut devices = saved_devices();
    let slot = device_slot(&base, username);
    let body = serde_json::json!({"username": username, "password": password, "totp": totp, "device": devices.get(&slot)});
    let response = http(args.hub_ca.as_deref())?
        .post(format!("{base}/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach the hub at {base}"))?;
    let answer: serde_json::Value = problem(response).await?.json().await?;
    let token = answer["token"]
        .as_str()
        .ok_or_else(|| anyhow!("the hub gave no token"))?
        .to_owned();
    let path = session_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let saved = Saved {
        hub: base.clone(),
        username: username.to_owned(),
        token,
    };
    civic_hub::keys::write_private(&path, &serde_json::to_string(&saved)?)
        .with_context(|| format!("keeping the session in {}", path.display()))?;
    if let Some(device) = answer["device"].as_str() {
        devices.insert(slot, device.to_owned());
        let path = devices_path();
        civic_hub::keys::write_private(&path, &serde_json::to_string(&devices)?)
            .with_context(|| format!("keeping the device token in {}", path.display()))?;
    }
    let second = if answer["user"]["authenticated_with"] == "password_and_totp" {
        "with a second factor"
    } else {
        "with a password only: duties that see personal data need `--totp CODE`"
    };
    println!(
        "signed in to {base} as {username} ({second}); session kept in {}",
        path.display()
    );
    Ok(())
}

/// `civic logout`: ends the session at the hub and forgets it.
pub async fn logout(args: &HubArgs) -> Result<()> {
    let client = Client::new(args)?;
    if client.token.is_some() {
        client
            .send(client.http.post(client.url("/auth/logout")))
            .await?;
    }
    let _ = std::fs::remove_file(session_path());
    println!("signed out");
    Ok(())
}

/// A TLS client configuration that trusts only the CA certificate(s) in
/// `ca_path`.
pub fn trusting(ca_path: &Path) -> Result<rustls::ClientConfig> {
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

pub fn read_password() -> Result<String> {
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
