//! Fixtures for the tests of nodes and of the hub that asks them: a
//! simulated Seoul's pings in a node's event store, and a telco node's
//! configuration. The node itself never uses them.

use crate::{EndorserConfig, NodeConfig};
use civic_exchange::{Item, Role};
use civic_node::EventStore;
use ed25519_dalek::VerifyingKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A simulated Seoul of `people` over `days` from 2020-03-01, generated
/// into `sim`.
pub fn simulated_city(sim: &Path, people: usize, days: u32, seed: u64) {
    let params = civic_sim::Params::seoul(people, days, seed, 2);
    civic_sim::generate(&params, sim, &mut |_, _| {}).expect("the city generates");
}

/// A node's event store in `data` holding the towers and `telco`'s pings
/// (`skt`, `kt` or `lguplus`) of the city in `sim`.
pub fn pings_store(sim: &Path, data: &Path, telco: &str) -> EventStore {
    let mut store = EventStore::pings(data).expect("an event store");
    store
        .import(
            Some(&sim.join("towers.csv")),
            &[&sim.join(format!("pings-{telco}.csv"))],
            Arc::new(Default::default()),
        )
        .expect("the pings import");
    store
}

/// What a test node trusts: its TLS certificate, key and CA (PEM), the
/// hub's key and the endorsers' keys.
pub struct Trust<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
    pub ca_pem: &'a str,
    pub hub: &'a VerifyingKey,
    pub approver: &'a VerifyingKey,
    pub police: &'a VerifyingKey,
}

/// A pings node `name` of `holder` at `addr`, its data and TLS files in
/// `dir`, giving location pings for the epidemic investigation.
pub fn pings_node_config(
    dir: &Path,
    name: &str,
    holder: &str,
    addr: String,
    trust: Trust<'_>,
    ingest_addr: Option<String>,
) -> NodeConfig {
    let write = |file: &str, text: &str| -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, text).expect("a test file is written");
        path
    };
    let hex = |k: &VerifyingKey| data_encoding::HEXLOWER.encode(k.as_bytes());
    NodeConfig {
        name: name.into(),
        holder: holder.into(),
        addr,
        data_dir: dir.to_path_buf(),
        kind: "pings".into(),
        tls_cert: write("node.pem", trust.cert_pem),
        tls_key: write("node-key.pem", trust.key_pem),
        tls_ca: write("ca.pem", trust.ca_pem),
        hub_name: "hub.civic".into(),
        hub_key: hex(trust.hub),
        endorsers: vec![
            EndorserConfig {
                role: Role::HealthApprover,
                key: hex(trust.approver),
            },
            EndorserConfig {
                role: Role::PoliceLocationOfficer,
                key: hex(trust.police),
            },
        ],
        gives: [(
            "epidemic investigation".to_owned(),
            vec![Item::LocationPings],
        )]
        .into_iter()
        .collect(),
        max_period_days: 28,
        hub_certified_endorsers: false,
        signing_key: dir.join("node-signing.key"),
        ingest_addr,
        issuer_url: None,
    }
}
