//! Deployments (the old advertisements): an image version, optional update
//! packages and an answer file for a collection, with a start window and a
//! limit on machines at once. Each machine has an explicit state in each
//! deployment (`pending` → `downloading` → `applying` → `specializing` →
//! `succeeded`, or `failed`/`incompatible` with a reason); the final states
//! are never left unless an admin retries, so nothing re-installs in a loop.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Json, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use slipway_api::*;
use slipway_sysprep::answer::{self as sysanswer, Answer, Facts};
use sqlx::any::AnyRow;

use crate::auth::{self, Admin};
use crate::db::{new_id, now_ms, parse_time, time, RowExt, Write};
use crate::error::{ApiErr, ApiResult};
use crate::{images, AppState};

/// What the server decides for a machine joining a deployment: its state,
/// the reason, and the host name the answer gives it.
struct Fit {
    state: DeployState,
    reason: Option<String>,
    hostname: Option<String>,
}

fn fit(req: &Requirements, answer: Option<&Answer>, facts: &serde_json::Value, seq: i64) -> Fit {
    if let Err(reason) = images::check(req, facts) {
        return Fit { state: DeployState::Incompatible, reason: Some(reason), hostname: None };
    }
    let mut hostname = None;
    if let Some(a) = answer {
        let mut f = Facts::from_document(facts);
        f.set("seq", &seq.to_string());
        match a.for_machine(&f, &mut |b| getrandom::fill(b).expect("the OS random source")) {
            Ok(m) => hostname = m.hostname,
            Err(e) => {
                return Fit {
                    state: DeployState::Incompatible,
                    reason: Some(format!("the answer file cannot be rendered for this machine: {e:#}")),
                    hostname: None,
                }
            }
        }
    }
    Fit { state: DeployState::Pending, reason: None, hostname }
}

struct DepRow {
    id: String,
    requirements: Requirements,
    answer: Option<Answer>,
}

fn dep_row(r: &AnyRow) -> DepRow {
    DepRow {
        id: r.text("id"),
        requirements: serde_json::from_str(&r.text("requirements")).unwrap_or_default(),
        answer: r.opt_text("answer").and_then(|t| sysanswer::parse(&t, "the deployment's answer file").ok()),
    }
}

/// Brings one machine's deployment rows in line with its collections and
/// facts: joins the deployments of its collections (pending, or
/// incompatible with the reason), re-checks its pending rows, and drops
/// pending rows of collections it left. Started and final rows stay.
pub(crate) async fn sync_machine(w: &mut Write<'_>, machine: &str, facts: &serde_json::Value) -> ApiResult<()> {
    let wanted = sqlx::query(
        "SELECT d.id, d.requirements, d.answer FROM deployments d JOIN collection_members cm ON cm.collection_id = d.collection_id \
         WHERE cm.machine_id = $1 AND (cm.explicit = 1 OR cm.by_rule = 1) AND d.cancelled = 0",
    )
    .bind(machine)
    .fetch_all(&mut *w.tx)
    .await?;
    let have = sqlx::query("SELECT deployment_id, state, seq FROM deployment_machines WHERE machine_id = $1")
        .bind(machine)
        .fetch_all(&mut *w.tx)
        .await?;
    let have: HashMap<String, (String, i64)> =
        have.iter().map(|r| (r.text("deployment_id"), (r.text("state"), r.int("seq")))).collect();
    let now = now_ms();
    for r in &wanted {
        let d = dep_row(r);
        match have.get(&d.id) {
            None => {
                let seq =
                    sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM deployment_machines WHERE deployment_id = $1")
                        .bind(&d.id)
                        .fetch_one(&mut *w.tx)
                        .await?
                        .int("n")
                        + 1;
                let f = fit(&d.requirements, d.answer.as_ref(), facts, seq);
                sqlx::query(
                    "INSERT INTO deployment_machines (deployment_id, machine_id, seq, state, reason, hostname, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&d.id)
                .bind(machine)
                .bind(seq)
                .bind(f.state.as_str())
                .bind(f.reason)
                .bind(f.hostname)
                .bind(now)
                .execute(&mut *w.tx)
                .await?;
            }
            Some((state, seq)) if state == DeployState::Pending.as_str() => {
                let f = fit(&d.requirements, d.answer.as_ref(), facts, *seq);
                sqlx::query(
                    "UPDATE deployment_machines SET state = $1, reason = $2, hostname = $3, updated_at = $4 \
                     WHERE deployment_id = $5 AND machine_id = $6",
                )
                .bind(f.state.as_str())
                .bind(f.reason)
                .bind(f.hostname)
                .bind(now)
                .bind(&d.id)
                .bind(machine)
                .execute(&mut *w.tx)
                .await?;
            }
            Some(_) => {}
        }
    }
    let wanted_ids: Vec<String> = wanted.iter().map(|r| r.text("id")).collect();
    for (dep, (state, _)) in &have {
        if state == DeployState::Pending.as_str() && !wanted_ids.contains(dep) {
            sqlx::query(
                "DELETE FROM deployment_machines WHERE deployment_id = $1 AND machine_id = $2 AND state = 'pending'",
            )
            .bind(dep)
            .bind(machine)
            .execute(&mut *w.tx)
            .await?;
        }
    }
    Ok(())
}

fn refused(r: sysanswer::Refused) -> ApiErr {
    let list: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
    ApiErr::bad_request(
        format!("the answer file is refused: {}", list.join("; ")),
        "fix it and check it with 'slipway answer check FILE --image IMAGE'",
    )
}

/// Makes a deployment. The image version is pinned now; the answer file is
/// checked against the image (as `slipway answer check --image` does), and
/// every machine of the collection joins as pending or incompatible.
#[utoipa::path(post, path = "/v1/deployments", operation_id = "create_deployment", tag = "deployments", request_body = DeploymentSpec,
    responses((status = 201, body = DeploymentStatus), (status = 400, body = ApiError)), security(("admin" = [])))]
pub async fn create(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Json(spec): Json<DeploymentSpec>,
) -> ApiResult<(StatusCode, Json<DeploymentStatus>)> {
    let answer = match &spec.answer {
        None => None,
        Some(text) => Some(sysanswer::parse(text, "the deployment's answer file").map_err(refused)?),
    };
    let start_at = match &spec.start_at {
        Some(t) => parse_time(t).map_err(|e| ApiErr::bad_request(format!("start_at: {e:#}"), "use RFC 3339"))?,
        None => now_ms(),
    };
    let end_at = match &spec.end_at {
        Some(t) => Some(parse_time(t).map_err(|e| ApiErr::bad_request(format!("end_at: {e:#}"), "use RFC 3339"))?),
        None => None,
    };
    if end_at.is_some_and(|e| e <= start_at) {
        return Err(ApiErr::bad_request("end_at is not after start_at", "give a window that ends after it starts"));
    }
    // Resolve the image and check the answer against it, off the async threads.
    let st2 = st.clone();
    let (spec2, answer2) = (spec.clone(), answer.clone());
    let (label, record, req) = tokio::task::spawn_blocking(move || -> ApiResult<(String, String, Requirements)> {
        let mut store = st2.store.write().expect("store lock");
        store.reload_index().map_err(ApiErr::from)?;
        let want: slipway_store::ImageSpec = spec2
            .image
            .parse()
            .map_err(|e: anyhow::Error| ApiErr::bad_request(format!("{e:#}"), "give NAME or NAME@VERSION"))?;
        let img = store.open_image(&want).map_err(|e| {
            ApiErr::bad_request(
                format!("image {}: {e:#}", spec2.image),
                "'slipway images' (or GET /v1/images) lists the server's images",
            )
        })?;
        let req = images::requirements(&store, &img, &spec2.firmware);
        if let Some(a) = &answer2 {
            let view = slipway_sysprep::answer::check::StoreImage::new(&store, img.clone());
            let problems = slipway_sysprep::answer::check::check(a, &view);
            if !problems.is_empty() {
                return Err(refused(sysanswer::Refused { file: "the deployment's answer file".into(), problems }));
            }
        }
        Ok((img.label(), img.record_id.to_string(), req))
    })
    .await
    .map_err(anyhow::Error::from)??;

    let mut w = st.db.write().await?;
    let coll = sqlx::query("SELECT id FROM collections WHERE name = $1")
        .bind(&spec.collection)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| {
            ApiErr::bad_request(format!("no collection {:?}", spec.collection), "make it with 'slipway collection new'")
        })?;
    for p in &spec.packages {
        let found = sqlx::query("SELECT id FROM packages WHERE id = $1").bind(p).fetch_optional(&mut *w.tx).await?;
        if found.is_none() {
            return Err(ApiErr::bad_request(
                format!("no package {p}"),
                "upload it with 'slipway deploy --package FILE' or PUT /v1/packages",
            ));
        }
    }
    let id = new_id("d");
    let name = spec.name.clone().unwrap_or_else(|| format!("{label} to {}", spec.collection));
    sqlx::query(
        "INSERT INTO deployments (id, name, image, record, collection_id, answer, packages, requirements, start_at, end_at, \
         max_parallel, cancelled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12)",
    )
    .bind(&id)
    .bind(&name)
    .bind(&label)
    .bind(&record)
    .bind(coll.text("id"))
    .bind(&spec.answer)
    .bind(serde_json::to_string(&spec.packages).unwrap_or_default())
    .bind(serde_json::to_string(&req).unwrap_or_default())
    .bind(start_at)
    .bind(end_at)
    .bind(spec.max_parallel as i64)
    .bind(now_ms())
    .execute(&mut *w.tx)
    .await?;
    let members = sqlx::query(
        "SELECT m.id, m.facts FROM machines m JOIN collection_members cm ON cm.machine_id = m.id \
         WHERE cm.collection_id = $1 AND (cm.explicit = 1 OR cm.by_rule = 1) ORDER BY m.enrolled_at, m.id",
    )
    .bind(coll.text("id"))
    .fetch_all(&mut *w.tx)
    .await?;
    for m in members {
        let facts: serde_json::Value = serde_json::from_str(&m.text("facts")).unwrap_or_default();
        sync_machine(&mut w, &m.text("id"), &facts).await?;
    }
    w.commit().await?;
    st.work.notify_waiters();
    Ok((StatusCode::CREATED, Json(status_of(&st, &id).await?)))
}

async fn counts(st: &AppState) -> ApiResult<HashMap<String, BTreeMap<String, u64>>> {
    let rows = sqlx::query(
        "SELECT deployment_id, state, COUNT(*) AS n FROM deployment_machines GROUP BY deployment_id, state",
    )
    .fetch_all(&st.db.pool)
    .await?;
    let mut out: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    for r in rows {
        out.entry(r.text("deployment_id")).or_default().insert(r.text("state"), r.int("n") as u64);
    }
    Ok(out)
}

const DEP_COLS: &str = "d.id, d.name, d.image, d.record, c.name AS collection, d.created_at, d.start_at, d.end_at, \
                        d.max_parallel, d.requirements, d.answer, d.packages, d.cancelled";

fn to_deployment(r: &AnyRow, counts: &HashMap<String, BTreeMap<String, u64>>) -> Deployment {
    let id = r.text("id");
    Deployment {
        name: r.text("name"),
        image: r.text("image"),
        record: r.text("record"),
        collection: r.text("collection"),
        created_at: time(r.int("created_at")),
        start_at: time(r.int("start_at")),
        end_at: r.opt_int("end_at").map(time),
        max_parallel: r.int("max_parallel") as u32,
        requirements: serde_json::from_str(&r.text("requirements")).unwrap_or_default(),
        has_answer: r.opt_text("answer").is_some(),
        packages: serde_json::from_str(&r.text("packages")).unwrap_or_default(),
        cancelled: r.int("cancelled") == 1,
        counts: counts.get(&id).cloned().unwrap_or_default(),
        id,
    }
}

/// Every deployment, newest first, with machine counts by state.
#[utoipa::path(get, path = "/v1/deployments", operation_id = "list_deployments", tag = "deployments",
    responses((status = 200, body = [Deployment])), security(("admin" = [])))]
pub async fn list(State(st): State<Arc<AppState>>, _a: Admin) -> ApiResult<Json<Vec<Deployment>>> {
    let rows = sqlx::query(&format!(
        "SELECT {DEP_COLS} FROM deployments d JOIN collections c ON c.id = d.collection_id ORDER BY d.created_at DESC, d.id"
    ))
    .fetch_all(&st.db.pool)
    .await?;
    let c = counts(&st).await?;
    Ok(Json(rows.iter().map(|r| to_deployment(r, &c)).collect()))
}

pub(crate) async fn status_of(st: &AppState, id: &str) -> ApiResult<DeploymentStatus> {
    let r = sqlx::query(&format!(
        "SELECT {DEP_COLS} FROM deployments d JOIN collections c ON c.id = d.collection_id WHERE d.id = $1 OR d.name = $1 \
         ORDER BY d.created_at DESC"
    ))
    .bind(id)
    .fetch_optional(&st.db.pool)
    .await?
    .ok_or_else(|| ApiErr::not_found(format!("no deployment {id:?}; 'slipway status' lists them")))?;
    let c = counts(st).await?;
    let deployment = to_deployment(&r, &c);
    let rows = sqlx::query(
        "SELECT dm.machine_id, m.name, dm.state, dm.reason, dm.hostname, dm.done, dm.total, dm.updated_at \
         FROM deployment_machines dm JOIN machines m ON m.id = dm.machine_id WHERE dm.deployment_id = $1 ORDER BY dm.seq",
    )
    .bind(&deployment.id)
    .fetch_all(&st.db.pool)
    .await?;
    let machines = rows
        .iter()
        .map(|r| DeploymentMachine {
            machine_id: r.text("machine_id"),
            machine: r.text("name"),
            state: DeployState::parse(&r.text("state")).unwrap_or(DeployState::Failed),
            reason: r.opt_text("reason"),
            hostname: r.opt_text("hostname"),
            done: r.opt_int("done").map(|v| v as u64),
            total: r.opt_int("total").map(|v| v as u64),
            updated_at: time(r.int("updated_at")),
        })
        .collect();
    Ok(DeploymentStatus { deployment, machines })
}

/// One deployment with every machine's state.
#[utoipa::path(get, path = "/v1/deployments/{id}", tag = "deployments", params(("id" = String, Path, description = "deployment id or name")),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ApiError)), security(("admin" = [])))]
pub async fn status(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentStatus>> {
    status_of(&st, &id).await.map(Json)
}

/// Stops a deployment: pending machines leave it; machines already at work
/// finish their step and report as usual.
#[utoipa::path(post, path = "/v1/deployments/{id}/cancel", tag = "deployments", params(("id" = String, Path)),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ApiError)), security(("admin" = [])))]
pub async fn cancel(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentStatus>> {
    let s = status_of(&st, &id).await?;
    let mut w = st.db.write().await?;
    sqlx::query("UPDATE deployments SET cancelled = 1 WHERE id = $1")
        .bind(&s.deployment.id)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query("DELETE FROM deployment_machines WHERE deployment_id = $1 AND state = 'pending'")
        .bind(&s.deployment.id)
        .execute(&mut *w.tx)
        .await?;
    w.commit().await?;
    status_of(&st, &s.deployment.id).await.map(Json)
}

/// Puts a failed or incompatible machine back to pending (after the cause
/// was fixed). This is the only way a final state is left.
#[utoipa::path(post, path = "/v1/deployments/{id}/machines/{machine}/retry", tag = "deployments",
    params(("id" = String, Path), ("machine" = String, Path)),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ApiError), (status = 409, body = ApiError)), security(("admin" = [])))]
pub async fn retry(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Path((id, machine)): Path<(String, String)>,
) -> ApiResult<Json<DeploymentStatus>> {
    let s = status_of(&st, &id).await?;
    let Some(m) = s.machines.iter().find(|m| m.machine_id == machine || m.machine == machine) else {
        return Err(ApiErr::not_found(format!("machine {machine:?} is not in deployment {}", s.deployment.name)));
    };
    if !matches!(m.state, DeployState::Failed | DeployState::Incompatible) {
        return Err(ApiErr::conflict(
            format!("machine {} is {}", m.machine, m.state.as_str()),
            "only failed or incompatible machines are retried",
        ));
    }
    let mut w = st.db.write().await?;
    let facts =
        sqlx::query("SELECT facts FROM machines WHERE id = $1").bind(&m.machine_id).fetch_one(&mut *w.tx).await?;
    let facts: serde_json::Value = serde_json::from_str(&facts.text("facts")).unwrap_or_default();
    sqlx::query(
        "UPDATE deployment_machines SET state = 'pending', reason = NULL, done = NULL, total = NULL, updated_at = $1 \
         WHERE deployment_id = $2 AND machine_id = $3",
    )
    .bind(now_ms())
    .bind(&s.deployment.id)
    .bind(&m.machine_id)
    .execute(&mut *w.tx)
    .await?;
    sync_machine(&mut w, &m.machine_id, &facts).await?;
    w.commit().await?;
    st.work.notify_waiters();
    status_of(&st, &s.deployment.id).await.map(Json)
}

/// Finds work for a machine: the deployment it is already working on, or
/// the oldest pending one whose window is open and which has a free slot.
/// Claiming moves the machine to `downloading`.
async fn claim(st: &AppState, machine: &str) -> ApiResult<Option<Assignment>> {
    let _turn = st.claim.lock().await;
    let now = now_ms();
    let rows = sqlx::query(
        "SELECT dm.deployment_id, dm.state, d.image, d.record, d.answer, d.packages, d.requirements, d.max_parallel, d.start_at, d.end_at \
         FROM deployment_machines dm JOIN deployments d ON d.id = dm.deployment_id \
         WHERE dm.machine_id = $1 AND d.cancelled = 0 AND dm.state IN ('pending', 'downloading', 'applying', 'specializing') \
         ORDER BY d.created_at, d.id",
    )
    .bind(machine)
    .fetch_all(&st.db.pool)
    .await?;
    let assignment = |r: &AnyRow, state: DeployState| Assignment {
        deployment_id: r.text("deployment_id"),
        image: r.text("image"),
        record: r.text("record"),
        state,
        has_answer: r.opt_text("answer").is_some(),
        packages: serde_json::from_str(&r.text("packages")).unwrap_or_default(),
    };
    if let Some(r) = rows.iter().find(|r| DeployState::parse(&r.text("state")).is_some_and(|s| s.is_active())) {
        let s = DeployState::parse(&r.text("state")).unwrap_or(DeployState::Downloading);
        return Ok(Some(assignment(r, s)));
    }
    for r in &rows {
        if r.int("start_at") > now || r.opt_int("end_at").is_some_and(|e| e <= now) {
            continue;
        }
        let dep = r.text("deployment_id");
        let max = r.int("max_parallel");
        let mut w = st.db.write().await?;
        if max > 0 {
            let busy = sqlx::query(
                "SELECT COUNT(*) AS n FROM deployment_machines WHERE deployment_id = $1 AND state IN ('downloading', 'applying', 'specializing')",
            )
            .bind(&dep)
            .fetch_one(&mut *w.tx)
            .await?
            .int("n");
            if busy >= max {
                continue;
            }
        }
        // The facts may have changed since the machine joined.
        let facts = sqlx::query("SELECT facts FROM machines WHERE id = $1").bind(machine).fetch_one(&mut *w.tx).await?;
        let facts: serde_json::Value = serde_json::from_str(&facts.text("facts")).unwrap_or_default();
        let req: Requirements = serde_json::from_str(&r.text("requirements")).unwrap_or_default();
        let (state, reason) = match images::check(&req, &facts) {
            Ok(()) => (DeployState::Downloading, None),
            Err(why) => (DeployState::Incompatible, Some(why)),
        };
        let done = sqlx::query(
            "UPDATE deployment_machines SET state = $1, reason = $2, updated_at = $3 WHERE deployment_id = $4 AND machine_id = $5 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(now)
        .bind(&dep)
        .bind(machine)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        if done.rows_affected() == 1 && state == DeployState::Downloading {
            return Ok(Some(assignment(r, state)));
        }
    }
    Ok(None)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkQuery {
    /// Seconds to wait for work before answering 204 (long poll; at most 60).
    wait: Option<u64>,
}

/// The agent asks for work and waits for it (long poll): 200 with the
/// assignment, 204 when there was none within `wait` seconds, 403 while the
/// machine awaits approval.
#[utoipa::path(get, path = "/v1/agent/work", tag = "agent", params(WorkQuery),
    responses((status = 200, body = Assignment), (status = 204), (status = 403, body = ApiError)), security(("machine" = [])))]
pub async fn work(
    State(st): State<Arc<AppState>>,
    m: auth::Machine,
    Query(q): Query<WorkQuery>,
) -> ApiResult<Response> {
    if m.status != MachineStatus::Approved {
        return Err(ApiErr::forbidden(
            "this machine awaits an admin's approval",
            "an admin runs 'slipway machines approve ID'; the agent keeps asking",
        ));
    }
    {
        let mut w = st.db.write().await?;
        sqlx::query("UPDATE machines SET last_seen = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(&m.id)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.unwrap_or(0).min(60));
    loop {
        let notified = st.work.notified();
        if let Some(a) = claim(&st, &m.id).await? {
            return Ok(Json(a).into_response());
        }
        // Wake on news, and at least every few seconds for start windows.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let _ = tokio::time::timeout(left.min(Duration::from_secs(5)), notified).await;
    }
}

/// The agent reports events: state changes, progress, log lines. Each
/// `(machine, seq)` is stored once, so a batch can be sent again safely.
#[utoipa::path(post, path = "/v1/agent/events", tag = "agent", request_body = EventBatch,
    responses((status = 200, body = EventAck)), security(("machine" = [])))]
pub async fn post_events(
    State(st): State<Arc<AppState>>,
    m: auth::Machine,
    Json(batch): Json<EventBatch>,
) -> ApiResult<Json<EventAck>> {
    if batch.events.len() > 1000 {
        return Err(ApiErr::bad_request("more than 1000 events in one batch", "send them in smaller batches"));
    }
    if let Some(e) = batch.events.iter().find(|e| e.kind == EventKind::State && e.state.is_none()) {
        return Err(ApiErr::bad_request(format!("event {} is a state event without a state", e.seq), "add \"state\""));
    }
    let now = now_ms();
    let machine = m.id.clone();
    // Events are small and frequent: they share commits (group commit on
    // SQLite); the answer goes out once they are durable.
    let (ack, finished) = st
        .db
        .grouped(move |conn| Box::pin(async move { store_events(conn, &machine, &batch.events, now).await }))
        .await?;
    if finished {
        // A slot is free: machines waiting for one may go.
        st.work.notify_waiters();
    }
    Ok(Json(ack))
}

/// Stores a batch of one machine's events and applies its state and
/// progress events to the machine's deployment rows; says what was taken
/// and whether the machine reached a final state.
async fn store_events(
    conn: &mut sqlx::AnyConnection,
    machine: &str,
    events: &[AgentEvent],
    now: i64,
) -> ApiResult<(EventAck, bool)> {
    let mut ack = EventAck::default();
    let mut finished = false;
    for e in events {
        let at = match &e.at {
            Some(t) => parse_time(t).unwrap_or(now),
            None => now,
        };
        let message = e.message.as_deref().map(|s| s.chars().take(4000).collect::<String>());
        let stored = sqlx::query(
            "INSERT INTO events (machine_id, seq, deployment_id, kind, state, message, done, total, at, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (machine_id, seq) DO NOTHING",
        )
        .bind(machine)
        .bind(e.seq as i64)
        .bind(&e.deployment_id)
        .bind(e.kind.as_str())
        .bind(e.state.map(|s| s.as_str()))
        .bind(&message)
        .bind(e.done.map(|v| v as i64))
        .bind(e.total.map(|v| v as i64))
        .bind(at)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if stored.rows_affected() == 0 {
            ack.duplicates += 1;
            continue;
        }
        ack.accepted += 1;
        let Some(dep) = &e.deployment_id else { continue };
        let row = sqlx::query("SELECT state FROM deployment_machines WHERE deployment_id = $1 AND machine_id = $2")
            .bind(dep)
            .bind(machine)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else {
            if e.kind == EventKind::State {
                ack.refused
                    .push(RefusedEvent { seq: e.seq, reason: format!("this machine is not in deployment {dep}") });
            }
            continue;
        };
        let cur = DeployState::parse(&row.text("state")).unwrap_or(DeployState::Failed);
        match e.kind {
            EventKind::State => {
                let to = e.state.unwrap_or(DeployState::Failed);
                if !cur.agent_may_go_to(to) {
                    ack.refused.push(RefusedEvent {
                        seq: e.seq,
                        reason: format!(
                            "the machine is {} in this deployment; it cannot go to {}",
                            cur.as_str(),
                            to.as_str()
                        ),
                    });
                    continue;
                }
                let reason = if to == DeployState::Failed {
                    message.clone().or(Some("the agent gave no reason".into()))
                } else {
                    None
                };
                sqlx::query(
                    "UPDATE deployment_machines SET state = $1, reason = $2, done = NULL, total = NULL, updated_at = $3 \
                     WHERE deployment_id = $4 AND machine_id = $5",
                )
                .bind(to.as_str())
                .bind(reason)
                .bind(now)
                .bind(dep)
                .bind(machine)
                .execute(&mut *conn)
                .await?;
                finished |= to.is_final();
            }
            EventKind::Progress if cur.is_active() => {
                sqlx::query("UPDATE deployment_machines SET done = $1, total = $2, updated_at = $3 WHERE deployment_id = $4 AND machine_id = $5")
                    .bind(e.done.map(|v| v as i64))
                    .bind(e.total.map(|v| v as i64))
                    .bind(now)
                    .bind(dep)
                    .bind(machine)
                    .execute(&mut *conn)
                    .await?;
            }
            _ => {}
        }
    }
    sqlx::query("UPDATE machines SET last_seen = $1 WHERE id = $2").bind(now).bind(machine).execute(&mut *conn).await?;
    Ok((ack, finished))
}

/// Events matching a machine and/or a deployment, oldest first.
pub(crate) async fn events_where(
    st: &AppState,
    machine: Option<&str>,
    deployment: Option<&str>,
    after: i64,
    limit: i64,
) -> ApiResult<Vec<Event>> {
    let limit = limit.clamp(1, 5000);
    let rows = sqlx::query(
        "SELECT id, machine_id, seq, deployment_id, kind, state, message, done, total, at FROM events \
         WHERE id > $1 AND ($2 = '' OR machine_id = $2) AND ($3 = '' OR deployment_id = $3) ORDER BY id LIMIT $4",
    )
    .bind(after)
    .bind(machine.unwrap_or(""))
    .bind(deployment.unwrap_or(""))
    .bind(limit)
    .fetch_all(&st.db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Event {
            id: r.int("id"),
            machine_id: r.text("machine_id"),
            seq: r.int("seq"),
            deployment_id: r.opt_text("deployment_id"),
            kind: EventKind::parse(&r.text("kind")).unwrap_or(EventKind::Log),
            state: r.opt_text("state").and_then(|s| DeployState::parse(&s)),
            message: r.opt_text("message"),
            done: r.opt_int("done").map(|v| v as u64),
            total: r.opt_int("total").map(|v| v as u64),
            at: time(r.int("at")),
        })
        .collect())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Only events with an id above this.
    after: Option<i64>,
    limit: Option<i64>,
    /// Only this deployment's events.
    deployment: Option<String>,
}

/// Events of the whole fleet, oldest first (follow with `after`).
#[utoipa::path(get, path = "/v1/events", tag = "deployments", params(FeedQuery),
    responses((status = 200, body = [Event])), security(("admin" = [])))]
pub async fn feed(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Query(q): Query<FeedQuery>,
) -> ApiResult<Json<Vec<Event>>> {
    events_where(&st, None, q.deployment.as_deref(), q.after.unwrap_or(0), q.limit.unwrap_or(500)).await.map(Json)
}

/// Reads a secret on the server: a file under the secrets directory, or a
/// variable of the server's environment.
fn resolve_secret(st: &AppState, key: &str, r: &sysanswer::SecretRef) -> ApiResult<Option<String>> {
    let fail = |why: String| {
        ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{key}: {why}"),
            Some("an admin fixes the server's secrets"),
        )
    };
    match r {
        sysanswer::SecretRef::File(p) => {
            let rel = std::path::Path::new(p);
            if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                return Err(fail(format!(
                    "secret file {p:?} must be a plain path inside the server's secrets directory {}",
                    st.secrets.display()
                )));
            }
            let path = st.secrets.join(rel);
            let mut v = std::fs::read_to_string(&path)
                .map_err(|e| fail(format!("reading secret file {p:?} in the server's secrets directory: {e}")))?;
            while v.ends_with('\n') || v.ends_with('\r') {
                v.pop();
            }
            Ok(Some(v))
        }
        sysanswer::SecretRef::Env(v) => {
            std::env::var(v).map(Some).map_err(|_| fail(format!("the server's environment variable {v} is not set")))
        }
        sysanswer::SecretRef::Credential(_) => Ok(None),
    }
}

/// A machine's answer file for one of its deployments, rendered for it:
/// host name fixed, secrets resolved. Only the machine itself may read it,
/// and only while it works on the deployment.
#[utoipa::path(get, path = "/v1/machines/{id}/deployments/{deployment}/answer", tag = "agent",
    params(("id" = String, Path), ("deployment" = String, Path)),
    responses((status = 200, body = RenderedAnswer), (status = 403, body = ApiError), (status = 404, body = ApiError),
        (status = 422, body = ApiError, description = "a secret the answer file names cannot be read on the server")), security(("machine" = [])))]
pub async fn answer(
    State(st): State<Arc<AppState>>,
    m: auth::Machine,
    Path((id, dep)): Path<(String, String)>,
) -> ApiResult<Response> {
    if m.id != id {
        return Err(ApiErr::forbidden("a machine reads only its own answer file", "use this machine's own id"));
    }
    let row = sqlx::query(
        "SELECT dm.state, dm.seq, dm.hostname, d.answer FROM deployment_machines dm JOIN deployments d ON d.id = dm.deployment_id \
         WHERE dm.deployment_id = $1 AND dm.machine_id = $2",
    )
    .bind(&dep)
    .bind(&m.id)
    .fetch_optional(&st.db.pool)
    .await?
    .ok_or_else(|| ApiErr::forbidden(format!("this machine is not in deployment {dep}"), "ask for a deployment the server assigned"))?;
    let state = DeployState::parse(&row.text("state")).unwrap_or(DeployState::Failed);
    if !state.is_active() {
        return Err(ApiErr::forbidden(
            format!(
                "the answer file is given only while the machine works on the deployment (it is {})",
                state.as_str()
            ),
            "ask for work first (GET /v1/agent/work)",
        ));
    }
    let Some(text) = row.opt_text("answer") else {
        return Err(ApiErr::not_found("this deployment has no answer file"));
    };
    let mut a = sysanswer::parse(&text, "the deployment's answer file").map_err(refused)?;
    let hostname = row.opt_text("hostname");
    if let Some(h) = &hostname {
        // The name was rendered once, when the machine joined; fix it so
        // {rand:N} and overrides give the same name on the machine.
        a.computer.name = Some(h.clone());
        for o in &mut a.machines {
            o.name = None;
        }
    }
    let mut secrets = Vec::new();
    for (key, r) in sysanswer::secret_refs_mut(&mut a) {
        if let Some(v) = resolve_secret(&st, &key, r)? {
            *r = sysanswer::SecretRef::File(format!("slipway-secret-{}", secrets.len()));
            secrets.push(v);
        }
    }
    let mut facts = BTreeMap::new();
    facts.insert("seq".to_string(), row.int("seq").to_string());
    let body = RenderedAnswer { toml: sysanswer::new::to_toml(&a), secrets, facts, hostname };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(resp)
}
