//! `civic audit verify`: the ledger and the exchange log checked from the
//! outside.

use anyhow::{anyhow, bail, Context, Result};
use civic_hub::ledger::verify_ledger;
use civic_hub::HubKeys;
use civic_store::{MetaStore, Store};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
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

pub(crate) async fn verify(
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

/// A tree head as saved from `/api/v1/audit/tree-head`, or bare.
pub(crate) fn read_tree_head(path: &Path) -> Result<civic_ledger::SignedTreeHead> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let head = value.get("tree_head").cloned().unwrap_or(value);
    serde_json::from_value(head).with_context(|| format!("{} holds no tree head", path.display()))
}

pub(crate) fn parse_key(hex: &str) -> Result<ed25519_dalek::VerifyingKey> {
    let bytes: [u8; 32] = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.trim().as_bytes())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow!("the public key must be 64 hex digits"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| anyhow!("the public key is not a valid Ed25519 key"))
}
