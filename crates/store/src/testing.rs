//! Fresh databases for tests: a new SQLite file, or a new PostgreSQL schema
//! at `CIVIC_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`).
//!
//! If PostgreSQL cannot be reached, [`postgres`] says so loudly on stderr
//! and returns `None` (the test is skipped) — except when `CI=true`, where
//! it panics: CI must never pass without the deployment database.
//!
//! [`backend_tests!`](crate::backend_tests) turns `async fn name(db: TestDb)`
//! functions into one test per backend.

use crate::{PostgresStore, SqliteStore, Store};
use std::sync::atomic::{AtomicU64, Ordering};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_url() -> String {
    std::env::var("CIVIC_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A migrated store of its own, and the way to reach its raw tables.
pub struct TestDb {
    pub store: Store,
    /// A URL `Store::connect` accepts (for PostgreSQL, the schema is set
    /// with [`TestDb::schema`]).
    pub url: String,
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Runs SQL on the database behind the store's back, as someone with
    /// direct database access would (tests of tamper evidence use it).
    pub async fn execute_raw(&self, sql: &str) -> Result<(), sqlx::Error> {
        match &self.store {
            Store::Sqlite(_) => {
                use sqlx::Connection;
                let path = self.url.trim_start_matches("sqlite://");
                let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
            Store::Postgres(_) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                let schema = self.schema.as_deref().unwrap_or("public");
                sqlx::raw_sql(&format!("SET search_path TO {schema}; {sql}"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            }
        }
    }

    /// Opens a second, independent store on the same database.
    pub async fn reopen(&self) -> Store {
        match &self.schema {
            Some(schema) => Store::Postgres(
                PostgresStore::connect_in_schema(&self.url, schema)
                    .await
                    .expect("reopen postgres"),
            ),
            None => Store::connect(&self.url).await.expect("reopen sqlite"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        let url = self.url.clone();
        // Drop the schema from a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(&mut conn)
                            .await;
                        let _ = conn.close().await;
                    }
                });
            }
        })
        .join();
    }
}

/// A fresh, migrated SQLite store in a temporary directory.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("civic.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::Sqlite(SqliteStore::open(&path).await.expect("open sqlite"));
    store.migrate().await.expect("migrate sqlite");
    TestDb {
        store,
        url,
        schema: None,
        _dir: Some(dir),
    }
}

/// A fresh, migrated PostgreSQL schema, or `None` (loudly) if PostgreSQL
/// is unreachable outside CI.
pub async fn postgres() -> Option<TestDb> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let url = postgres_url();
    let schema = format!(
        "civic_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let reachable = match reachable(&url) {
        Ok(()) => PostgresStore::connect_in_schema(&url, &schema).await,
        Err(e) => Err(e),
    };
    match reachable {
        Ok(pg) => {
            let store = Store::Postgres(pg);
            store.migrate().await.expect("migrate postgres");
            Some(TestDb {
                store,
                url,
                schema: Some(schema),
                _dir: None,
            })
        }
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("PostgreSQL is unreachable at {url} and CI=true: {e}");
            }
            // Straight to stderr: the test harness swallows `eprintln!`.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPED on PostgreSQL: cannot reach {url} ({e}).\n!!! Set CIVIC_TEST_POSTGRES_URL or start PostgreSQL; with CI=true this fails.\n"
            );
            None
        }
    }
}

/// Fails fast when nothing listens where the URL points, instead of
/// waiting out the pool's connection timeout.
fn reachable(url: &str) -> crate::Result<()> {
    use std::net::ToSocketAddrs;
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
    let host = options.get_host();
    if host.starts_with('/') {
        return Ok(()); // a Unix socket: let the driver try
    }
    let addrs = (host, options.get_port())
        .to_socket_addrs()
        .map_err(|e| crate::StoreError::Database(sqlx::Error::Io(e)))?;
    let mut last = None;
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(crate::StoreError::Database(sqlx::Error::Io(
        last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")),
    )))
}

/// One test per backend from each `async fn name(db: TestDb)` in scope.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::sqlite().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::testing::postgres().await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

// What the storage suites (the platform's and the applications') share: an
// audit entry, an institution, a user.

use crate::*;
use civic_core::audit::{AuditEntry, Outcome};
use civic_core::identity::{Duty, InstitutionKind, Name, Username};

pub fn audit(action: &str) -> AuditEntry {
    AuditEntry::new(action, "test", Outcome::Allowed)
}

pub async fn institution(store: &Store, name: &str, kind: InstitutionKind) -> Institution {
    store
        .create_institution(
            NewInstitution {
                name: Name::parse("name", name).unwrap(),
                kind,
            },
            audit("admin.institution.create"),
        )
        .await
        .unwrap()
}

pub async fn user(
    store: &Store,
    institution: &Institution,
    username: &str,
    duties: &[&str],
) -> User {
    store
        .create_user(
            NewUser {
                institution: institution.id,
                username: Username::parse(username).unwrap(),
                display_name: Name::parse("display_name", "Kim Ji-won").unwrap(),
                password_hash: "$argon2id$fake".into(),
                machine_client: false,
                duties: duties.iter().map(|d| Duty::parse(d).unwrap()).collect(),
            },
            audit("admin.user.create"),
        )
        .await
        .unwrap()
}
