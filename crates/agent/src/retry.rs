//! Retrying requests while the server is away (restarting, unreachable,
//! overloaded): the agent carries on when it is back.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;

use crate::client::is_transient;

/// Runs `f` until it succeeds or fails for a reason that is not transient,
/// waiting 0.5 s, 1 s, 2 s ... up to 10 s between tries, for at most
/// `SLIPWAY_AGENT_RETRY_SECS` (default 600) seconds in all.
pub async fn retrying<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let limit = std::env::var("SLIPWAY_AGENT_RETRY_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(600u64);
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(500);
    let mut said = false;
    loop {
        match f().await {
            Ok(v) => {
                if said {
                    eprintln!("slipway agent: the server answers again");
                }
                return Ok(v);
            }
            Err(e) if is_transient(&e) && started.elapsed().as_secs() < limit => {
                if !said {
                    eprintln!("slipway agent: {e:#}; trying again");
                    said = true;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}
