//! The demo's institution nodes: the telcos, the card companies and the
//! subway operator of the demo's institutions, each enrolled with the hub
//! through the real token flow, filled from the demo's synthetic city,
//! and serving over mutual TLS on loopback.

use civic_exchange::Item;
use civic_hub::{ClientInfo, Ctx, Hub};
use civic_node::{EventStore, Kind};
use civic_node_server::{NodeConfig, RunningNode};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// (node name, institution, kind, holder code, the city's files: places,
/// events)
const NODES: &[(&str, &str, Kind, &str, &str, &str)] = &[
    (
        "node-skt",
        "SK Telecom",
        Kind::Pings,
        "skt",
        "towers.csv",
        "pings-skt.csv",
    ),
    (
        "node-kt",
        "KT",
        Kind::Pings,
        "kt",
        "towers.csv",
        "pings-kt.csv",
    ),
    (
        "node-lguplus",
        "LG Uplus",
        Kind::Pings,
        "lguplus",
        "towers.csv",
        "pings-lguplus.csv",
    ),
    (
        "node-shinhan",
        "Shinhan Card",
        Kind::Transactions,
        "shinhan",
        "merchants.csv",
        "transactions-shinhan.csv",
    ),
    (
        "node-kb",
        "KB Kookmin Card",
        Kind::Transactions,
        "kb",
        "merchants.csv",
        "transactions-kb.csv",
    ),
    (
        "node-samsung",
        "Samsung Card",
        Kind::Transactions,
        "samsung",
        "merchants.csv",
        "transactions-samsung.csv",
    ),
    (
        "node-seoul-metro",
        "Seoul Metro",
        Kind::Taps,
        "seoul-metro",
        "stops.csv",
        "taps.csv",
    ),
];

/// The demo's MyData holders' nodes: (node name, institution, its kind in
/// the demo's records).
const RECORDS_NODES: &[(&str, &str, &str)] = &[
    (
        "node-mois",
        "Ministry of the Interior and Safety",
        "ministry",
    ),
    (
        "node-nhis",
        "National Health Insurance Service",
        "public_institution",
    ),
    (
        "node-seoul",
        "Seoul Metropolitan Government",
        "local_government",
    ),
];

/// What can go wrong starting the demo's nodes.
#[derive(Debug, thiserror::Error)]
pub enum DemoNodeError {
    #[error("the demo has no institution {0:?}")]
    NoInstitution(&'static str),
    #[error(transparent)]
    Hub(#[from] civic_hub::HubError),
    #[error(transparent)]
    Node(#[from] civic_node_server::NodeError),
    #[error("filling {0}: {1}")]
    Fill(&'static str, civic_node::StoreError),
    #[error(transparent)]
    Trust(#[from] civic_exchange::trust::TrustError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

type Result<T, E = DemoNodeError> = std::result::Result<T, E>;

/// A demo node that is up.
pub struct DemoNode {
    pub name: &'static str,
    pub institution: &'static str,
    /// pings, transactions, taps or records.
    pub kind: &'static str,
    /// Events held, or administrative records for a records node.
    pub events: u64,
    pub running: RunningNode,
}

/// Enrols (first time), fills and starts every demo node of the
/// institutions `data_dir`'s hub knows, from the city in `data_dir/city`,
/// and registers where each answers.
pub async fn start(hub: &Hub, data_dir: &Path) -> Result<Vec<DemoNode>> {
    let city = data_dir.join("city");
    let ctx = Ctx::local_operator();
    let institutions = hub.list_institutions(&ctx).await?;
    let mut nodes = Vec::new();
    for &(name, institution, kind, code, places, events) in NODES {
        let dir = data_dir.join("nodes").join(name);
        let config_path =
            enrol_once(hub, &institutions, name, institution, kind.dir_name(), &dir).await?;
        let config = NodeConfig::load(&config_path)?;
        // Fill the store once from the city.
        let mut store = EventStore::open(&dir, kind).map_err(|e| DemoNodeError::Fill(name, e))?;
        if store.ping_count() == 0 {
            let (places, events) = (city.join(places), city.join(events));
            store
                .import(Some(&places), &[&events], Arc::new(AtomicU64::new(0)))
                .map_err(|e| DemoNodeError::Fill(name, e))?;
        }
        let count = store.ping_count();
        drop(store);
        let running = civic_node_server::serve(config).await?;
        hub.register_node(
            &ctx,
            name,
            &format!("https://127.0.0.1:{}", running.addr.port()),
            kind.dir_name(),
            code,
        )
        .await?;
        nodes.push(DemoNode {
            name,
            institution,
            kind: kind.dir_name(),
            events: count,
            running,
        });
    }
    for &(name, institution, records_kind) in RECORDS_NODES {
        let dir = data_dir.join("nodes").join(name);
        let config_path =
            enrol_once(hub, &institutions, name, institution, "records", &dir).await?;
        let records = dir.join(civic_node_server::mydata::RECORDS_FILE);
        let count = if records.exists() {
            civic_node_server::mydata::load_records(&records)
                .map_err(|e| DemoNodeError::Io(std::io::Error::other(e)))?
                .len()
        } else {
            crate::records::write_records(&city.join("people.csv"), records_kind, &records)?
        };
        let running = civic_node_server::serve(NodeConfig::load(&config_path)?).await?;
        hub.register_node(
            &ctx,
            name,
            &format!("https://127.0.0.1:{}", running.addr.port()),
            "records",
            name,
        )
        .await?;
        nodes.push(DemoNode {
            name,
            institution,
            kind: "records",
            events: count as u64,
            running,
        });
    }
    Ok(nodes)
}

/// Enrols node `name` of `institution` into `dir`, unless it was enrolled
/// there before; returns its configuration's path.
async fn enrol_once(
    hub: &Hub,
    institutions: &[civic_store::Institution],
    name: &str,
    institution: &'static str,
    kind: &str,
    dir: &PathBuf,
) -> Result<PathBuf> {
    let config_path = dir.join("node.toml");
    if !config_path.exists() {
        let inst = institutions
            .iter()
            .find(|i| i.name == institution)
            .ok_or(DemoNodeError::NoInstitution(institution))?;
        enrol(hub, inst.id, name, institution, kind, dir).await?;
    }
    Ok(config_path)
}

async fn enrol(
    hub: &Hub,
    institution: civic_core::identity::InstitutionId,
    name: &str,
    holder: &str,
    kind: &str,
    dir: &PathBuf,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let (token, _) = hub
        .issue_enrolment_token(&Ctx::local_operator(), institution, name, Some(1))
        .await?;
    let (tls_key, csr) = civic_exchange::trust::new_request(name)?;
    let signing = civic_node_server::load_or_create_key(&dir.join("node-signing.key"))?;
    let local = ClientInfo {
        addr: Some("local".into()),
        request_id: None,
    };
    let enrolled = hub
        .enrol_node(
            &token,
            name,
            &csr,
            &data_encoding::HEXLOWER.encode(signing.verifying_key().as_bytes()),
            &local,
        )
        .await?;
    let (purpose, item) = match kind {
        "pings" => ("epidemic investigation", Item::LocationPings),
        "transactions" => ("epidemic investigation", Item::CardTransactions),
        "taps" => ("epidemic investigation", Item::TransitTaps),
        _ => (
            civic_mydata::transfers::MYDATA_PURPOSE,
            Item::AdministrativeRecords,
        ),
    };
    let enrolment = civic_node_server::Enrolment {
        name,
        holder,
        kind,
        issuer_url: (kind == "records")
            .then(|| civic_mydata::MyData::new(hub.clone()).issuer_url(name)),
        addr: "127.0.0.1:0",
        certificate: &enrolled.certificate,
        ca: &enrolled.ca,
        tls_key_pem: &tls_key,
        hub_name: &enrolled.hub_name,
        hub_key: &enrolled.hub_key,
        gives: [(purpose.to_owned(), vec![item])].into_iter().collect(),
    };
    civic_node_server::write_enrolment(dir, &enrolment)?;
    Ok(())
}

/// A demo user as if signed in with two factors, for in-process callers
/// (benchmarks, tests): whoever holds the hub holds its keys anyway.
pub async fn signed_in(hub: &Hub, username: &str) -> civic_hub::Result<Ctx> {
    use civic_store::{InstitutionStore, UserStore};
    let user = hub
        .store
        .user_by_username(username)
        .await?
        .ok_or_else(|| civic_hub::HubError::NotFound(format!("demo user {username}")))?;
    let institution = hub
        .store
        .institution(user.institution)
        .await?
        .ok_or_else(|| civic_hub::HubError::NotFound(format!("institution of {username}")))?;
    Ok(Ctx {
        actor: civic_hub::Actor::User {
            principal: civic_core::policy::Principal {
                user: user.id,
                username: user.username,
                institution: user.institution,
                institution_kind: institution.kind,
                duties: user.duties,
                auth: civic_core::policy::AuthMethod::PasswordAndTotp,
            },
            session: None,
        },
        client: ClientInfo::default(),
    })
}
