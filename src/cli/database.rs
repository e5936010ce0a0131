//! Which database the server and the admin commands open: embedded SQLite
//! under `--data-dir` by default, PostgreSQL with `--database postgres://...`.

use changegate_store::Store;
use changegate_store_postgres::PostgresStore;
use changegate_store_sqlite::SqliteStore;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Clone)]
pub struct DatabaseArgs {
    /// Where the embedded SQLite database lives (created when missing).
    #[arg(long, env = "CHANGEGATE_DATA_DIR", default_value = "./changegate-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL URL (postgres://user:password@host:port/database) instead of SQLite.
    #[arg(long, env = "CHANGEGATE_DATABASE")]
    pub database: Option<String>,
}

pub enum Opened {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PostgresStore>),
}

impl Opened {
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Opened::Sqlite(s) => s.clone(),
            Opened::Postgres(s) => s.clone(),
        }
    }
}

impl DatabaseArgs {
    /// Open the database and run its migrations.
    pub async fn open(&self) -> Result<Opened, String> {
        match &self.database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                PostgresStore::connect(url)
                    .await
                    .map(|s| Opened::Postgres(Arc::new(s)))
                    .map_err(|e| format!("cannot open PostgreSQL: {e}"))
            }
            Some(url) if url.starts_with("sqlite:") => SqliteStore::open_url(url)
                .await
                .map(|s| Opened::Sqlite(Arc::new(s)))
                .map_err(|e| format!("cannot open SQLite: {e}")),
            Some(other) => Err(format!(
                "--database {other:?} is neither postgres://... nor sqlite:...; leave it out to use the embedded database in --data-dir"
            )),
            None => SqliteStore::open_dir(&self.data_dir)
                .await
                .map(|s| Opened::Sqlite(Arc::new(s)))
                .map_err(|e| {
                    format!(
                        "cannot open the embedded database in {}: {e}",
                        self.data_dir.display()
                    )
                }),
        }
    }

    pub fn describe(&self) -> String {
        match &self.database {
            Some(url) => {
                // Never print a password.
                match url.split_once('@') {
                    Some((_, host)) => format!("postgres://***@{host}"),
                    None => url.clone(),
                }
            }
            None => format!("sqlite {}", self.data_dir.join("changegate.db").display()),
        }
    }
}
