//! The server's database: SQLite by default (a file in the server's data
//! directory), PostgreSQL for scale. One schema, applied by migrations of
//! each dialect (`migrations/sqlite`, `migrations/postgres`); every query is
//! written once, in the SQL both understand, with `$1` parameters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::future::BoxFuture;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Executor};
use tokio::sync::{mpsc, oneshot, Mutex, MutexGuard};

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
    writer: Arc<Mutex<()>>,
    /// SQLite: the group-commit writer's queue (see [`Db::grouped`]).
    jobs: Option<mpsc::UnboundedSender<Job>>,
    /// Transactions the group-commit writer committed.
    group_commits: Arc<AtomicU64>,
    url_shown: String,
}

/// Most jobs committed together by the group-commit writer.
const GROUP_MAX: usize = 512;

/// Hands a grouped job's outcome to its caller once the group's commit is
/// known (`None`: committed).
type Deliver = Box<dyn FnOnce(Option<&anyhow::Error>) + Send>;

/// A grouped job: runs on the writer's transaction and says whether it
/// succeeded (a failed job's savepoint is rolled back).
type Job = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, (bool, Deliver)> + Send>;

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
        let writer = Arc::new(Mutex::new(()));
        let group_commits = Arc::new(AtomicU64::new(0));
        let jobs = (dialect == Dialect::Sqlite).then(|| {
            let (send, recv) = mpsc::unbounded_channel();
            tokio::spawn(group_writer(pool.clone(), writer.clone(), group_commits.clone(), recv));
            send
        });
        Ok(Db { pool, dialect, writer, jobs, group_commits, url_shown: shown(url) })
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

    /// Transactions committed by the group-commit writer so far (SQLite).
    pub fn group_commits(&self) -> u64 {
        self.group_commits.load(Ordering::Relaxed)
    }

    /// Runs `job` in a write transaction and returns its result once that
    /// transaction is committed; a job that fails changes nothing.
    ///
    /// On SQLite, where every commit waits for an fsync and only one writer
    /// may run, jobs queued while one commit is under way are run together
    /// in the next transaction, each in its own savepoint, and committed
    /// with one fsync (group commit). Use it for small, frequent writes
    /// (status events) whose callers wait only for durability. On
    /// PostgreSQL each job is its own transaction.
    pub async fn grouped<T, E, F>(&self, job: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        let Some(jobs) = &self.jobs else {
            let mut w = self.write().await?;
            let out = job(&mut w.tx).await?;
            w.commit().await?;
            return Ok(out);
        };
        let (send, recv) = oneshot::channel::<Result<T, E>>();
        let run: Job = Box::new(move |conn| {
            Box::pin(async move {
                let out = job(conn).await;
                let ok = out.is_ok();
                let deliver: Deliver = Box::new(move |commit: Option<&anyhow::Error>| {
                    let out = match (out, commit) {
                        (Ok(_), Some(e)) => Err(E::from(anyhow!("{e:#}"))),
                        (out, _) => out,
                    };
                    let _ = send.send(out);
                });
                (ok, deliver)
            })
        });
        jobs.send(run).map_err(|_| E::from(anyhow!("the database writer has stopped")))?;
        recv.await.map_err(|_| {
            E::from(anyhow!("the database writer dropped this write before running it (see the server log)"))
        })?
    }
}

/// The SQLite group-commit writer: takes the writer's turn, runs every job
/// already queued (up to [`GROUP_MAX`]) in one transaction, each inside a
/// savepoint, commits once and then tells every caller.
async fn group_writer(
    pool: AnyPool,
    writer: Arc<Mutex<()>>,
    commits: Arc<AtomicU64>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(first) = jobs.recv().await {
        let _turn = writer.lock().await;
        let mut tx = match pool.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                // Dropping the job tells its caller; say why here.
                eprintln!("slipway serve: database writer: starting a transaction: {e}");
                continue;
            }
        };
        let mut delivers: Vec<Deliver> = Vec::new();
        let mut broken = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            if let Err(e) = (*tx).execute("SAVEPOINT grouped_job").await {
                eprintln!("slipway serve: database writer: savepoint: {e}");
                break;
            }
            let (ok, deliver) = job(&mut tx).await;
            let mut ended = Ok(());
            if !ok {
                ended = (*tx).execute("ROLLBACK TO grouped_job").await.map(drop);
            }
            if ended.is_ok() {
                ended = (*tx).execute("RELEASE grouped_job").await.map(drop);
            }
            delivers.push(deliver);
            if let Err(e) = ended {
                // The transaction is in an unknown state: the whole group
                // is rolled back and fails.
                broken = Some(anyhow!("ending a savepoint: {e}"));
                break;
            }
            if delivers.len() < GROUP_MAX {
                next = jobs.try_recv().ok();
            }
        }
        let committed = match broken {
            Some(e) => {
                if let Err(re) = tx.rollback().await {
                    eprintln!("slipway serve: database writer: rolling back: {re}");
                }
                Err(e)
            }
            None => tx.commit().await.map_err(|e| anyhow!("committing to the database: {e}")),
        };
        commits.fetch_add(committed.is_ok() as u64, Ordering::Relaxed);
        if let Err(e) = &committed {
            eprintln!("slipway serve: database writer: {e:#}");
        }
        for d in delivers {
            d(committed.as_ref().err());
        }
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

    /// Many writers at once through the group-commit writer: every job that
    /// succeeds is committed, a failing job changes nothing and does not
    /// take its group down, and the data is on disk for a new connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_writes_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("t.db").display());
        let db = Arc::new(Db::open(&url).await.unwrap());
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").execute(&db.pool).await.unwrap();
        let mut tasks = Vec::new();
        for k in 0..400i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.grouped(move |conn| {
                    Box::pin(async move {
                        sqlx::query("INSERT INTO t (k, v) VALUES ($1, 'x')").bind(k).execute(&mut *conn).await?;
                        if k % 7 == 0 {
                            // A second row, then a failure: both must vanish.
                            sqlx::query("INSERT INTO t (k, v) VALUES ($1, 'y')")
                                .bind(k + 10_000)
                                .execute(&mut *conn)
                                .await?;
                            anyhow::bail!("job {k} fails on purpose");
                        }
                        Ok::<_, anyhow::Error>(k)
                    })
                })
                .await
            }));
        }
        let mut ok = 0;
        for (k, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(v) => {
                    assert_eq!(v, k as i64);
                    ok += 1;
                }
                Err(e) => {
                    assert_eq!(k % 7, 0, "job {k}: {e:#}");
                    assert!(format!("{e:#}").contains("fails on purpose"), "{e:#}");
                }
            }
        }
        assert_eq!(ok, 400 - 400usize.div_ceil(7));
        // Jobs shared commits (400 jobs queued at once).
        let commits = db.group_commits();
        assert!((1..200).contains(&commits), "{commits} commits for 400 jobs");
        drop(db);
        let db = Db::open(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&db.pool).await.unwrap();
        assert_eq!(n as usize, ok);
        let bad: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE k >= 10000 OR k % 7 = 0")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(bad, 0);
    }

    #[test]
    fn times_round_trip() {
        let ms = parse_time("2026-11-23T08:00:00Z").unwrap();
        assert_eq!(time(ms), "2026-11-23T08:00:00Z");
        assert!(parse_time("yesterday").is_err());
    }
}
