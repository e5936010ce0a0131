//! A fresh store per test on either backend: `TestDb::sqlite()` (a file in
//! a temporary directory) or `TestDb::postgres()` (a new database in the
//! process's private PostgreSQL), plus the raw access tests need to tamper
//! with the database the way someone with database access could.
//!
//! `store_tests!` turns a list of `async fn case(db: TestDb)` into one
//! test per case and backend, `sqlite::case` and `postgres::case`.

use std::future::Future;
use std::sync::Arc;

use changegate_store::Store;
use changegate_store_postgres::PostgresStore;
use changegate_store_sqlite::SqliteStore;
use chrono::{DateTime, Utc};
use tempfile::TempDir;

use crate::postgres::{PgDatabase, PgServer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
}

/// A store on a database of its own, which goes with the value: keep the
/// `TestDb` alive as long as its store is used.
pub enum TestDb {
    Sqlite {
        store: Arc<SqliteStore>,
        _dir: TempDir,
    },
    Postgres {
        store: Arc<PostgresStore>,
        database: PgDatabase,
    },
}

impl TestDb {
    /// A migrated SQLite store in a new temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory for SQLite: {e}"),
        };
        match SqliteStore::open_dir(dir.path()).await {
            Ok(store) => TestDb::Sqlite {
                store: Arc::new(store),
                _dir: dir,
            },
            Err(e) => panic!(
                "cannot open a SQLite store in {}: {e}",
                dir.path().display()
            ),
        }
    }

    /// A migrated PostgreSQL store on a new database. Fails (never skips)
    /// when PostgreSQL is not installed, saying how to install it.
    pub async fn postgres() -> TestDb {
        let database = match create_pg_database().await {
            Ok(database) => database,
            Err(e) => panic!("{e}"),
        };
        match PostgresStore::connect(database.url()).await {
            Ok(store) => TestDb::Postgres {
                store: Arc::new(store),
                database,
            },
            Err(e) => panic!("cannot open a PostgreSQL store on {}: {e}", database.url()),
        }
    }

    /// A migrated PostgreSQL store on a new database of `server` (a
    /// private server a test may stop and restart).
    pub async fn postgres_on(server: &'static PgServer) -> TestDb {
        let database = match server.create_database().await {
            Ok(database) => database,
            Err(e) => panic!("{e}"),
        };
        match PostgresStore::connect(database.url()).await {
            Ok(store) => TestDb::Postgres {
                store: Arc::new(store),
                database,
            },
            Err(e) => panic!("cannot open a PostgreSQL store on {}: {e}", database.url()),
        }
    }

    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::sqlite().await,
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            TestDb::Sqlite { .. } => Backend::Sqlite,
            TestDb::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The store, as the server sees it.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            TestDb::Sqlite { store, .. } => store.clone(),
            TestDb::Postgres { store, .. } => store.clone(),
        }
    }

    /// A second store on the same database, opened afresh: what a restarted
    /// server or another replica sees (nothing shared but the database).
    pub async fn reopen(&self) -> Arc<dyn Store> {
        match self {
            TestDb::Sqlite { _dir, .. } => match SqliteStore::open_dir(_dir.path()).await {
                Ok(store) => Arc::new(store),
                Err(e) => panic!("cannot reopen the SQLite store: {e}"),
            },
            TestDb::Postgres { database, .. } => match PostgresStore::connect(database.url()).await
            {
                Ok(store) => Arc::new(store),
                Err(e) => panic!("cannot reopen the PostgreSQL store: {e}"),
            },
        }
    }

    /// The PostgreSQL database's URL; `None` on SQLite.
    pub fn postgres_url(&self) -> Option<&str> {
        match self {
            TestDb::Sqlite { .. } => None,
            TestDb::Postgres { database, .. } => Some(database.url()),
        }
    }

    /// Run SQL (one or more statements, no parameters) behind the store's
    /// back; returns the rows affected. Write it in the SQL both databases
    /// speak.
    pub async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self {
            TestDb::Sqlite { store, .. } => Ok(sqlx::raw_sql(sql)
                .execute(store.pool())
                .await?
                .rows_affected()),
            TestDb::Postgres { store, .. } => Ok(sqlx::raw_sql(sql)
                .execute(store.pool())
                .await?
                .rows_affected()),
        }
    }

    /// One integer from a query, e.g. a count.
    pub async fn query_i64(&self, sql: &str) -> Result<i64, sqlx::Error> {
        match self {
            TestDb::Sqlite { store, .. } => sqlx::query_scalar(sql).fetch_one(store.pool()).await,
            TestDb::Postgres { store, .. } => sqlx::query_scalar(sql).fetch_one(store.pool()).await,
        }
    }

    /// Every point in time stored in a column of the database, as
    /// `(table.column, value)`: on PostgreSQL the columns typed as
    /// timestamps, on SQLite the text values written as RFC 3339 times.
    /// sqlx's own migration table, stamped by the database, is left out.
    pub async fn timestamps(&self) -> Result<Vec<(String, DateTime<Utc>)>, sqlx::Error> {
        use sqlx::Row;
        let mut found = Vec::new();
        match self {
            TestDb::Sqlite { store, .. } => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table'
                     AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
                )
                .fetch_all(store.pool())
                .await?;
                for table in tables {
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                            .bind(&table)
                            .fetch_all(store.pool())
                            .await?;
                    for column in columns {
                        let rows = sqlx::query(&format!(
                            "SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\"
                             WHERE typeof(\"{column}\") = 'text'
                               AND \"{column}\" GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ]*'"
                        ))
                        .fetch_all(store.pool())
                        .await?;
                        for row in rows {
                            let text: String = row.get(0);
                            let t = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1))
                                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                            found.push((format!("{table}.{column}"), t.with_timezone(&Utc)));
                        }
                    }
                }
            }
            TestDb::Postgres { store, .. } => {
                let columns = sqlx::query(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND data_type LIKE 'timestamp%'
                       AND table_name <> '_sqlx_migrations'",
                )
                .fetch_all(store.pool())
                .await?;
                for c in columns {
                    let (table, column): (String, String) = (c.get(0), c.get(1));
                    let rows = sqlx::query(&format!(
                        "SELECT \"{column}\" FROM \"{table}\" WHERE \"{column}\" IS NOT NULL"
                    ))
                    .fetch_all(store.pool())
                    .await?;
                    for row in rows {
                        let t: DateTime<Utc> = row.get(0);
                        found.push((format!("{table}.{column}"), t));
                    }
                }
            }
        }
        Ok(found)
    }

    /// How the database would run `sql` (its query plan as text), with
    /// sequential scans priced out on PostgreSQL so that a plan reading
    /// every row means no index serves the query, however small the table.
    pub async fn plan(&self, sql: &str) -> Result<String, sqlx::Error> {
        use sqlx::Row;
        match self {
            TestDb::Sqlite { store, .. } => {
                let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .fetch_all(store.pool())
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| r.get::<String, _>("detail"))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
            TestDb::Postgres { store, .. } => {
                let mut tx = store.pool().begin().await?;
                sqlx::query("SET LOCAL enable_seqscan = off")
                    .execute(&mut *tx)
                    .await?;
                let rows = sqlx::query(&format!("EXPLAIN {sql}"))
                    .fetch_all(&mut *tx)
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        }
    }

    /// Remove the append-only triggers of approvals, revisions and audit
    /// events, as an attacker with database access would before editing
    /// history: what is left to catch that is the hash chain.
    pub async fn drop_append_only_triggers(&self) -> Result<(), sqlx::Error> {
        let sql = match self {
            TestDb::Sqlite { .. } => {
                "DROP TRIGGER approvals_append_only_update; DROP TRIGGER approvals_append_only_delete;
                 DROP TRIGGER audit_events_append_only_update; DROP TRIGGER audit_events_append_only_delete;
                 DROP TRIGGER revisions_append_only_update; DROP TRIGGER revisions_append_only_delete;"
            }
            TestDb::Postgres { .. } => {
                "ALTER TABLE approvals DISABLE TRIGGER USER; ALTER TABLE audit_events DISABLE TRIGGER USER;
                 ALTER TABLE change_revisions DISABLE TRIGGER USER;"
            }
        };
        self.exec(sql).await.map(|_| ())
    }
}

async fn create_pg_database() -> Result<PgDatabase, crate::postgres::PgError> {
    PgServer::shared()?.create_database().await
}

/// Run `body` on a fresh database of each backend in turn (SQLite first).
/// Prefer `store_tests!`, which makes one test per backend.
pub async fn on_both_backends<F, Fut>(body: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in Backend::ALL {
        body(TestDb::new(backend).await).await;
    }
}

/// One `#[tokio::test]` per case and backend, from `async fn case(db: TestDb)`
/// functions in scope: `store_tests!(case_a, case_b);` makes `sqlite::case_a`,
/// `postgres::case_a`, ... The runtime is multi-threaded so that
/// concurrency cases run in parallel for real. The calling crate needs
/// tokio with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! store_tests {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::db::TestDb::sqlite().await).await
                }
            )+
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::db::TestDb::postgres().await).await
                }
            )+
        }
    };
}
