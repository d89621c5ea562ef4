//! The server's database: SQLite by default (a file in the server's data
//! directory), PostgreSQL for scale. One schema, applied by migrations of
//! each dialect (`migrations/sqlite`, `migrations/postgres`); every query is
//! written once, in the SQL both understand, with `$1` parameters.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use tokio::sync::{Mutex, MutexGuard};

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

pub struct Db {
    pub pool: AnyPool,
    pub dialect: Dialect,
    /// SQLite allows one writer: write transactions queue here instead of
    /// failing with "database is locked".
    writer: Mutex<()>,
    url_shown: String,
}

/// A write transaction (and, on SQLite, the writer's turn).
pub struct Write<'a> {
    pub tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<MutexGuard<'a, ()>>,
}

impl Write<'_> {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await.context("committing to the database")
    }
}

/// The URL without its password, for messages.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Db {
    /// Connects and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            bail!("database URL {} is neither sqlite:PATH nor postgres://...", shown(url));
        };
        // A new SQLite file is created (as `slipway serve` does by default).
        let url = if dialect == Dialect::Sqlite && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_string()
        };
        let url = url.as_str();
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        if dialect == Dialect::Sqlite {
            opts = opts.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 30000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    Ok(())
                })
            });
        } else {
            opts = opts.max_connections(16);
        }
        let pool = opts.connect(url).await.with_context(|| format!("connecting to the database {}", shown(url)))?;
        if dialect == Dialect::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await.context("switching SQLite to WAL mode")?;
        }
        let m = match dialect {
            Dialect::Sqlite => &SQLITE,
            Dialect::Postgres => &POSTGRES,
        };
        m.run(&pool).await.with_context(|| format!("bringing the schema of {} up to date", shown(url)))?;
        Ok(Db { pool, dialect, writer: Mutex::new(()), url_shown: shown(url) })
    }

    pub fn describe(&self) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("SQLite ({})", self.url_shown),
            Dialect::Postgres => format!("PostgreSQL ({})", self.url_shown),
        }
    }

    /// Starts a write transaction.
    pub async fn write(&self) -> Result<Write<'_>> {
        let turn = match self.dialect {
            Dialect::Sqlite => Some(self.writer.lock().await),
            Dialect::Postgres => None,
        };
        let tx = self.pool.begin().await.context("starting a database transaction")?;
        Ok(Write { tx, _turn: turn })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// RFC 3339 (UTC, seconds) for a millisecond time.
pub fn time(ms: i64) -> String {
    slipway_store::rfc3339(ms.div_euclid(1000))
}

/// Parses an RFC 3339 time to milliseconds.
pub fn parse_time(s: &str) -> Result<i64> {
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(s))
        .with_context(|| format!("{s:?} is not an RFC 3339 time like 2026-11-23T08:00:00Z"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
}

/// Column helpers that read the same on both databases.
pub trait RowExt {
    fn text(&self, col: &str) -> String;
    fn opt_text(&self, col: &str) -> Option<String>;
    fn int(&self, col: &str) -> i64;
    fn opt_int(&self, col: &str) -> Option<i64>;
}

impl RowExt for AnyRow {
    fn text(&self, col: &str) -> String {
        sqlx::Row::try_get::<String, _>(self, col).unwrap_or_default()
    }
    fn opt_text(&self, col: &str) -> Option<String> {
        sqlx::Row::try_get::<Option<String>, _>(self, col).ok().flatten()
    }
    fn int(&self, col: &str) -> i64 {
        self.opt_int(col).unwrap_or(0)
    }
    fn opt_int(&self, col: &str) -> Option<i64> {
        match sqlx::Row::try_get::<Option<i64>, _>(self, col) {
            Ok(v) => v,
            Err(_) => sqlx::Row::try_get::<Option<i32>, _>(self, col).ok().flatten().map(i64::from),
        }
    }
}

/// A random id with a prefix: `m-3f9c0a1b2d4e`.
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("the OS random source");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{prefix}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(shown("postgres://slipway:hunter2@127.0.0.1:5432/db"), "postgres://slipway:***@127.0.0.1:5432/db");
        assert_eq!(shown("sqlite:/var/lib/x.db"), "sqlite:/var/lib/x.db");
    }

    #[test]
    fn times_round_trip() {
        let ms = parse_time("2026-11-23T08:00:00Z").unwrap();
        assert_eq!(time(ms), "2026-11-23T08:00:00Z");
        assert!(parse_time("yesterday").is_err());
    }
}
