//! Machines: enrollment, approval, inventory facts with history.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Json, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use slipway_api::*;
use sqlx::any::AnyRow;

use crate::auth::{self, Admin};
use crate::db::{new_id, now_ms, time, RowExt};
use crate::error::{ApiErr, ApiResult};
use crate::{collections, AppState};

/// Enrolls a machine: with a valid enrollment token it is approved at once,
/// without one it waits for an admin. The credential in the answer is shown
/// only this once.
#[utoipa::path(post, path = "/v1/enroll", tag = "agent", request_body = EnrollRequest,
    responses((status = 201, body = EnrollResponse), (status = 401, body = ApiError)))]
pub async fn enroll(
    State(st): State<Arc<AppState>>,
    Json(req): Json<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    let now = now_ms();
    let facts = req.inventory.facts();
    let name = display_name(&facts);
    let mut w = st.db.write().await?;
    let (status, with) = match &req.token {
        None => (MachineStatus::AwaitingApproval, None),
        Some(t) => {
            let row = sqlx::query("SELECT id, uses_left, expires_at FROM enrollment_tokens WHERE hash = $1")
                .bind(auth::token_hash(t))
                .fetch_optional(&mut *w.tx)
                .await?;
            let Some(row) = row else {
                return Err(ApiErr::unauthorized(
                    "the enrollment token is not valid",
                    "ask an admin for a token ('slipway server token new --enrollment'), or enroll without one and wait for approval",
                ));
            };
            if row.opt_int("expires_at").is_some_and(|e| e <= now) {
                return Err(ApiErr::unauthorized("the enrollment token has expired", "ask an admin for a new one"));
            }
            if let Some(u) = row.opt_int("uses_left") {
                if u <= 0 {
                    return Err(ApiErr::unauthorized("the enrollment token is used up", "ask an admin for a new one"));
                }
                // Conditional, so two enrollments at once cannot both take the last use.
                let took = sqlx::query(
                    "UPDATE enrollment_tokens SET uses_left = uses_left - 1 WHERE id = $1 AND uses_left > 0",
                )
                .bind(row.text("id"))
                .execute(&mut *w.tx)
                .await?;
                if took.rows_affected() != 1 {
                    return Err(ApiErr::unauthorized("the enrollment token is used up", "ask an admin for a new one"));
                }
            }
            (MachineStatus::Approved, Some(row.text("id")))
        }
    };
    let id = new_id("m");
    let credential = auth::new_token(auth::MACHINE_PREFIX);
    let facts_text = facts.to_string();
    sqlx::query(
        "INSERT INTO machines (id, name, status, credential_hash, enrolled_at, enrolled_with, last_seen, facts, facts_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)",
    )
    .bind(&id)
    .bind(&name)
    .bind(status.as_str())
    .bind(auth::token_hash(&credential))
    .bind(now)
    .bind(with)
    .bind(now)
    .bind(&facts_text)
    .execute(&mut *w.tx)
    .await?;
    sqlx::query("INSERT INTO facts_history (machine_id, version, reported_at, facts) VALUES ($1, 1, $2, $3)")
        .bind(&id)
        .bind(now)
        .bind(&facts_text)
        .execute(&mut *w.tx)
        .await?;
    collections::refresh_machine(&mut w, &id, &facts).await?;
    w.commit().await?;
    st.work.notify_waiters();
    Ok((StatusCode::CREATED, Json(EnrollResponse { machine_id: id, credential, status })))
}

/// A readable name: the host name, else the DMI serial, else the first MAC.
fn display_name(facts: &serde_json::Value) -> String {
    let s = |p: &[&str]| {
        let mut v = facts;
        for k in p {
            v = v.get(*k)?;
        }
        v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
    };
    s(&["name"])
        .or_else(|| s(&["hostname"]))
        .or_else(|| s(&["dmi", "serial"]))
        .or_else(|| facts.get("nic")?.get(0)?.get("mac")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "unnamed".into())
}

/// The agent reports its inventory again (at start and when it changes);
/// a changed report becomes a new facts version and membership is
/// evaluated again.
#[utoipa::path(post, path = "/v1/agent/inventory", tag = "agent", request_body = Inventory,
    responses((status = 200, body = FactsVersion)), security(("machine" = [])))]
pub async fn report(
    State(st): State<Arc<AppState>>,
    m: auth::Machine,
    Json(inv): Json<Inventory>,
) -> ApiResult<Json<FactsVersion>> {
    let facts = inv.facts();
    let now = now_ms();
    let mut w = st.db.write().await?;
    let row = sqlx::query("SELECT facts, facts_version FROM machines WHERE id = $1")
        .bind(&m.id)
        .fetch_one(&mut *w.tx)
        .await?;
    let old: serde_json::Value = serde_json::from_str(&row.text("facts")).unwrap_or_default();
    let mut version = row.int("facts_version");
    let changed = changed_keys(&old, &facts);
    if changed.is_empty() {
        sqlx::query("UPDATE machines SET last_seen = $1 WHERE id = $2")
            .bind(now)
            .bind(&m.id)
            .execute(&mut *w.tx)
            .await?;
    } else {
        version += 1;
        let text = facts.to_string();
        sqlx::query("UPDATE machines SET facts = $1, facts_version = $2, last_seen = $3, name = $4 WHERE id = $5")
            .bind(&text)
            .bind(version)
            .bind(now)
            .bind(display_name(&facts))
            .bind(&m.id)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("INSERT INTO facts_history (machine_id, version, reported_at, facts) VALUES ($1, $2, $3, $4)")
            .bind(&m.id)
            .bind(version)
            .bind(now)
            .bind(&text)
            .execute(&mut *w.tx)
            .await?;
        collections::refresh_machine(&mut w, &m.id, &facts).await?;
    }
    w.commit().await?;
    if !changed.is_empty() {
        st.work.notify_waiters();
    }
    Ok(Json(FactsVersion { version, reported_at: time(now), facts, changed }))
}

/// Top-level keys whose values differ (added, removed or changed).
fn changed_keys(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| o.get(*k) != n.get(*k)).cloned().collect()
}

pub(crate) async fn collections_of(st: &AppState) -> ApiResult<BTreeMap<String, Vec<String>>> {
    let rows = sqlx::query(
        "SELECT m.machine_id, c.name FROM collection_members m JOIN collections c ON c.id = m.collection_id \
         WHERE m.explicit = 1 OR m.by_rule = 1 ORDER BY c.name",
    )
    .fetch_all(&st.db.pool)
    .await?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        out.entry(r.text("machine_id")).or_default().push(r.text("name"));
    }
    Ok(out)
}

async fn last_deployments(st: &AppState, machine: Option<&str>) -> ApiResult<BTreeMap<String, Vec<MachineDeployment>>> {
    let sql = "SELECT dm.machine_id, dm.deployment_id, d.name, dm.state, dm.reason FROM deployment_machines dm \
               JOIN deployments d ON d.id = dm.deployment_id";
    let rows = match machine {
        Some(m) => {
            sqlx::query(&format!("{sql} WHERE dm.machine_id = $1 ORDER BY d.created_at DESC"))
                .bind(m)
                .fetch_all(&st.db.pool)
                .await?
        }
        None => sqlx::query(&format!("{sql} ORDER BY d.created_at DESC")).fetch_all(&st.db.pool).await?,
    };
    let mut out: BTreeMap<String, Vec<MachineDeployment>> = BTreeMap::new();
    for r in rows {
        out.entry(r.text("machine_id")).or_default().push(MachineDeployment {
            deployment_id: r.text("deployment_id"),
            deployment: r.text("name"),
            state: DeployState::parse(&r.text("state")).unwrap_or(DeployState::Failed),
            reason: r.opt_text("reason"),
        });
    }
    Ok(out)
}

fn summary(
    r: &AnyRow,
    colls: &BTreeMap<String, Vec<String>>,
    deps: &BTreeMap<String, Vec<MachineDeployment>>,
) -> (MachineSummary, serde_json::Value) {
    let id = r.text("id");
    let facts: serde_json::Value = serde_json::from_str(&r.text("facts")).unwrap_or_default();
    let s = MachineSummary {
        name: r.text("name"),
        status: MachineStatus::parse(&r.text("status")).unwrap_or(MachineStatus::Rejected),
        enrolled_at: time(r.int("enrolled_at")),
        last_seen: r.opt_int("last_seen").map(time),
        arch: facts.get("arch").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
        memory_mb: facts.get("memory_mb").and_then(|v| v.as_u64()).unwrap_or(0),
        collections: colls.get(&id).cloned().unwrap_or_default(),
        last_deployment: deps.get(&id).and_then(|d| d.first().cloned()),
        id,
    };
    (s, facts)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only machines with this status.
    status: Option<String>,
}

/// Every machine, with its collections and its newest deployment state.
#[utoipa::path(get, path = "/v1/machines", operation_id = "list_machines", tag = "machines", params(ListQuery),
    responses((status = 200, body = [MachineSummary])), security(("admin" = [])))]
pub async fn list(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<MachineSummary>>> {
    let rows = sqlx::query("SELECT id, name, status, enrolled_at, last_seen, facts FROM machines ORDER BY name, id")
        .fetch_all(&st.db.pool)
        .await?;
    let colls = collections_of(&st).await?;
    let deps = last_deployments(&st, None).await?;
    Ok(Json(
        rows.iter()
            .map(|r| summary(r, &colls, &deps).0)
            .filter(|m| q.status.as_deref().is_none_or(|s| m.status.as_str() == s))
            .collect(),
    ))
}

async fn find(st: &AppState, id_or_name: &str) -> ApiResult<AnyRow> {
    let rows = sqlx::query(
        "SELECT id, name, status, enrolled_at, last_seen, facts, facts_version FROM machines WHERE id = $1 OR name = $1",
    )
    .bind(id_or_name)
    .fetch_all(&st.db.pool)
    .await?;
    match rows.len() {
        0 => Err(ApiErr::not_found(format!("no machine {id_or_name:?}; 'slipway machines' lists them"))),
        1 => Ok(rows.into_iter().next().expect("one row")),
        n => Err(ApiErr::conflict(format!("{n} machines are named {id_or_name:?}"), "give the machine's id")),
    }
}

/// One machine: facts, collections, deployments.
#[utoipa::path(get, path = "/v1/machines/{id}", tag = "machines", params(("id" = String, Path, description = "machine id or name")),
    responses((status = 200, body = MachineDetail), (status = 404, body = ApiError)), security(("admin" = [])))]
pub async fn detail(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<MachineDetail>> {
    let r = find(&st, &id).await?;
    let colls = collections_of(&st).await?;
    let deps = last_deployments(&st, Some(&r.text("id"))).await?;
    let (summary, facts) = summary(&r, &colls, &deps);
    let deployments = deps.get(&summary.id).cloned().unwrap_or_default();
    Ok(Json(MachineDetail { summary, facts, facts_version: r.int("facts_version"), deployments }))
}

/// Every version of a machine's facts, newest first, each with the keys
/// that changed from the one before.
#[utoipa::path(get, path = "/v1/machines/{id}/facts", tag = "machines", params(("id" = String, Path, description = "machine id or name")),
    responses((status = 200, body = [FactsVersion]), (status = 404, body = ApiError)), security(("admin" = [])))]
pub async fn facts_history(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<FactsVersion>>> {
    let r = find(&st, &id).await?;
    let rows =
        sqlx::query("SELECT version, reported_at, facts FROM facts_history WHERE machine_id = $1 ORDER BY version")
            .bind(r.text("id"))
            .fetch_all(&st.db.pool)
            .await?;
    let mut out = Vec::new();
    let mut prev = serde_json::Value::Null;
    for r in rows {
        let facts: serde_json::Value = serde_json::from_str(&r.text("facts")).unwrap_or_default();
        let changed = if prev.is_null() { Vec::new() } else { changed_keys(&prev, &facts) };
        prev = facts.clone();
        out.push(FactsVersion { version: r.int("version"), reported_at: time(r.int("reported_at")), facts, changed });
    }
    out.reverse();
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with an id above this (for following a log).
    after: Option<i64>,
    /// At most this many (default 500, at most 5000).
    limit: Option<i64>,
}

/// A machine's events (state changes, progress, log lines), oldest first.
#[utoipa::path(get, path = "/v1/machines/{id}/events", tag = "machines", params(("id" = String, Path, description = "machine id or name"), EventsQuery),
    responses((status = 200, body = [Event]), (status = 404, body = ApiError)), security(("admin" = [])))]
pub async fn events(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Vec<Event>>> {
    let r = find(&st, &id).await?;
    crate::deployments::events_where(&st, Some(&r.text("id")), None, q.after.unwrap_or(0), q.limit.unwrap_or(500))
        .await
        .map(Json)
}

async fn set_status(st: &AppState, id: &str, status: MachineStatus) -> ApiResult<Json<MachineSummary>> {
    let r = find(st, id).await?;
    let id = r.text("id");
    let mut w = st.db.write().await?;
    sqlx::query("UPDATE machines SET status = $1 WHERE id = $2")
        .bind(status.as_str())
        .bind(&id)
        .execute(&mut *w.tx)
        .await?;
    w.commit().await?;
    st.work.notify_waiters();
    let r = find(st, &id).await?;
    let colls = collections_of(st).await?;
    let deps = last_deployments(st, Some(&id)).await?;
    Ok(Json(summary(&r, &colls, &deps).0))
}

/// Lets a machine that enrolled without a token receive work.
#[utoipa::path(post, path = "/v1/machines/{id}/approve", tag = "machines", params(("id" = String, Path, description = "machine id or name")),
    responses((status = 200, body = MachineSummary), (status = 404, body = ApiError)), security(("admin" = [])))]
pub async fn approve(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<MachineSummary>> {
    set_status(&st, &id, MachineStatus::Approved).await
}

/// Refuses a machine: its credential stops working.
#[utoipa::path(post, path = "/v1/machines/{id}/reject", tag = "machines", params(("id" = String, Path, description = "machine id or name")),
    responses((status = 200, body = MachineSummary), (status = 404, body = ApiError)), security(("admin" = [])))]
pub async fn reject(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<MachineSummary>> {
    set_status(&st, &id, MachineStatus::Rejected).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_names_added_removed_and_changed() {
        let a = serde_json::json!({"arch": "x86_64", "memory_mb": 1, "rack": "r1"});
        let b = serde_json::json!({"arch": "x86_64", "memory_mb": 2, "site": "s"});
        assert_eq!(changed_keys(&a, &b), ["memory_mb", "rack", "site"]);
        assert!(changed_keys(&a, &a).is_empty());
    }
}
