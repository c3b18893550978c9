//! What the hub's tests share: scans of everything a deployment keeps —
//! the database's files and write-ahead logs, the nodes' directories, the
//! logs — for a personal value in the clear — and the synthetic city
//! their hubs and nodes serve.
#![allow(dead_code)]

use civic_store::testing::TestDb;
use civic_store::Store;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    found_in(haystack, &[needle.to_owned()]).is_some()
}

/// The first of `values` found in `haystack` (one pass, whatever their
/// number: a scan of a write-ahead log for thousands of identifiers).
pub fn found_in<'a>(haystack: &[u8], values: &'a [String]) -> Option<&'a str> {
    let matcher = aho_corasick::AhoCorasick::new(values).expect("the values make an automaton");
    matcher
        .find(haystack)
        .map(|m| values[m.pattern().as_usize()].as_str())
}

/// Every file the database keeps its tables in, as bytes.
pub async fn database_bytes(db: &TestDb) -> Option<Vec<u8>> {
    match &db.store {
        Store::Sqlite(_) => {
            let path = db.url.trim_start_matches("sqlite://").to_owned();
            let mut out = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                    out.extend(bytes);
                }
            }
            Some(out)
        }
        Store::Postgres(_) => {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("CHECKPOINT").execute(&mut conn).await.unwrap();
            let dir: String = sqlx::query("SHOW data_directory")
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get(0);
            let files: Vec<String> = sqlx::query(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND pg_relation_filepath(c.oid) IS NOT NULL",
            )
            .bind(db.schema.as_deref().unwrap())
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
            let mut out = Vec::new();
            for f in files {
                let base = std::path::Path::new(&dir).join(&f);
                // A relation's segments: base, base.1, …, and its toast.
                for seg in 0.. {
                    let path = if seg == 0 {
                        base.clone()
                    } else {
                        base.with_extension(seg.to_string())
                    };
                    match std::fs::read(&path) {
                        Ok(bytes) => out.extend(bytes),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                        Err(e) => {
                            assert_ne!(
                                std::env::var("CI").as_deref(),
                                Ok("true"),
                                "cannot read PostgreSQL's files ({e}): the scan needs them in CI"
                            );
                            eprintln!("!!! SKIPPED the scan of PostgreSQL's files: {e}");
                            return None;
                        }
                    }
                }
            }
            Some(out)
        }
    }
}

/// PostgreSQL's write-ahead log (the whole cluster's: every test's), as
/// bytes; none for SQLite, whose log is among its files.
pub async fn postgres_wal_bytes(db: &TestDb) -> Option<Vec<u8>> {
    use sqlx::{Connection, Row};
    let Store::Postgres(_) = &db.store else {
        return None;
    };
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("CHECKPOINT").execute(&mut conn).await.unwrap();
    let dir: String = sqlx::query("SHOW data_directory")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(Path::new(&dir).join("pg_wal"))
        .ok()?
        .flatten()
    {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            out.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    Some(out)
}

/// Every file under `dir` whose path `keep` accepts, with its path.
pub fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if keep(&path) {
                out.push((
                    path.display().to_string(),
                    std::fs::read(&path).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

/// What the process logged (every target, down to DEBUG), since the first
/// call: the hub's and its nodes' log lines, as an operator would keep
/// them.
pub fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Captured(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .json()
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    })
    .clone()
}

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A synthetic Seoul of `people` over `days` (from 2020-03-01), generated
/// into `dir/city` as the demo's nodes read it.
pub fn seoul_city(dir: &Path, people: usize, days: u32, seed: u64) {
    civic_node_server::testing::simulated_city(&dir.join("city"), people, days, seed);
}
