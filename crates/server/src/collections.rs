//! Collections: named sets of machines, chosen by a rule over their facts
//! (see [`crate::rules`]) and by explicit membership. Membership is kept in
//! `collection_members` and evaluated again whenever a machine's facts or a
//! collection's rule change; deployments follow it.

use std::sync::Arc;

use crate::error::{Json, Path};
use axum::extract::State;
use axum::http::StatusCode;
use slipway_api::*;
use sqlx::any::AnyRow;

use crate::auth::Admin;
use crate::db::{new_id, now_ms, time, RowExt, Write};
use crate::error::{ApiErr, ApiResult};
use crate::{deployments, AppState};
use slipway_api::rules::Rule;

/// Evaluates every collection's rule against one machine's facts, then
/// brings the machine's deployments in line.
pub(crate) async fn refresh_machine(w: &mut Write<'_>, machine: &str, facts: &serde_json::Value) -> ApiResult<()> {
    let rows = sqlx::query("SELECT id, rule FROM collections").fetch_all(&mut *w.tx).await?;
    for r in rows {
        // Rules are checked when stored, so a stored rule parses.
        let rule = r.opt_text("rule").map(|t| Rule::parse(&t));
        let matches = matches!(rule, Some(Ok(rule)) if rule.matches(facts));
        set_by_rule(w, &r.text("id"), machine, matches).await?;
    }
    deployments::sync_machine(w, machine, facts).await
}

async fn set_by_rule(w: &mut Write<'_>, coll: &str, machine: &str, matches: bool) -> ApiResult<()> {
    if matches {
        sqlx::query(
            "INSERT INTO collection_members (collection_id, machine_id, explicit, by_rule) VALUES ($1, $2, 0, 1) \
             ON CONFLICT (collection_id, machine_id) DO UPDATE SET by_rule = 1",
        )
        .bind(coll)
        .bind(machine)
        .execute(&mut *w.tx)
        .await?;
    } else {
        sqlx::query("UPDATE collection_members SET by_rule = 0 WHERE collection_id = $1 AND machine_id = $2")
            .bind(coll)
            .bind(machine)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM collection_members WHERE collection_id = $1 AND machine_id = $2 AND explicit = 0 AND by_rule = 0")
            .bind(coll)
            .bind(machine)
            .execute(&mut *w.tx)
            .await?;
    }
    Ok(())
}

/// Evaluates one collection over every machine (after its rule or members
/// changed).
async fn refresh_collection(w: &mut Write<'_>, coll: &str, rule: Option<&Rule>) -> ApiResult<()> {
    let machines = sqlx::query("SELECT id, facts FROM machines").fetch_all(&mut *w.tx).await?;
    for m in machines {
        let facts: serde_json::Value = serde_json::from_str(&m.text("facts")).unwrap_or_default();
        let matches = rule.is_some_and(|r| r.matches(&facts));
        set_by_rule(w, coll, &m.text("id"), matches).await?;
        deployments::sync_machine(w, &m.text("id"), &facts).await?;
    }
    Ok(())
}

fn parse_rule(spec: &CollectionSpec) -> ApiResult<Option<Rule>> {
    match spec.rule.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(t) => Rule::parse(t).map(Some).map_err(|e| {
            ApiErr::bad_request(
                format!("rule of collection {:?}: {e}", spec.name),
                "see docs/rule-language.md for the rule language",
            )
        }),
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(ApiErr::bad_request(
            format!("{name:?} is not a collection name"),
            "use 1-64 letters, digits, '-', '_' or '.', not starting with '-' or '.'",
        ))
    }
}

async fn resolve_members(w: &mut Write<'_>, members: &[String]) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for m in members {
        let rows =
            sqlx::query("SELECT id FROM machines WHERE id = $1 OR name = $1").bind(m).fetch_all(&mut *w.tx).await?;
        match rows.len() {
            1 => out.push(rows[0].text("id")),
            0 => {
                return Err(ApiErr::bad_request(format!("member {m:?} is no machine"), "'slipway machines' lists them"))
            }
            n => return Err(ApiErr::bad_request(format!("member {m:?} names {n} machines"), "give the machine's id")),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

async fn write_members(w: &mut Write<'_>, coll: &str, members: &[String]) -> ApiResult<()> {
    sqlx::query("UPDATE collection_members SET explicit = 0 WHERE collection_id = $1")
        .bind(coll)
        .execute(&mut *w.tx)
        .await?;
    for m in members {
        sqlx::query(
            "INSERT INTO collection_members (collection_id, machine_id, explicit, by_rule) VALUES ($1, $2, 1, 0) \
             ON CONFLICT (collection_id, machine_id) DO UPDATE SET explicit = 1",
        )
        .bind(coll)
        .bind(m)
        .execute(&mut *w.tx)
        .await?;
    }
    Ok(())
}

async fn load(st: &AppState, name: &str) -> ApiResult<Collection> {
    let row = sqlx::query("SELECT id, name, rule, created_at FROM collections WHERE name = $1")
        .bind(name)
        .fetch_optional(&st.db.pool)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no collection {name:?}; 'slipway collection list' lists them")))?;
    to_collection(st, &row).await
}

async fn to_collection(st: &AppState, row: &AnyRow) -> ApiResult<Collection> {
    let members =
        sqlx::query("SELECT machine_id, explicit FROM collection_members WHERE collection_id = $1 ORDER BY machine_id")
            .bind(row.text("id"))
            .fetch_all(&st.db.pool)
            .await?;
    Ok(Collection {
        name: row.text("name"),
        rule: row.opt_text("rule"),
        members: members.iter().filter(|m| m.int("explicit") == 1).map(|m| m.text("machine_id")).collect(),
        machines: members.iter().map(|m| m.text("machine_id")).collect(),
        created_at: time(row.int("created_at")),
    })
}

/// Every collection with its machines.
#[utoipa::path(get, path = "/v1/collections", operation_id = "list_collections", tag = "collections",
    responses((status = 200, body = [Collection])), security(("admin" = [])))]
pub async fn list(State(st): State<Arc<AppState>>, _a: Admin) -> ApiResult<Json<Vec<Collection>>> {
    let rows =
        sqlx::query("SELECT id, name, rule, created_at FROM collections ORDER BY name").fetch_all(&st.db.pool).await?;
    let mut out = Vec::new();
    for r in &rows {
        out.push(to_collection(&st, r).await?);
    }
    Ok(Json(out))
}

/// One collection.
#[utoipa::path(get, path = "/v1/collections/{name}", tag = "collections", params(("name" = String, Path)),
    responses((status = 200, body = Collection), (status = 404, body = ApiError)), security(("admin" = [])))]
pub async fn get(State(st): State<Arc<AppState>>, _a: Admin, Path(name): Path<String>) -> ApiResult<Json<Collection>> {
    load(&st, &name).await.map(Json)
}

/// Makes a collection; its membership is evaluated at once.
#[utoipa::path(post, path = "/v1/collections", operation_id = "create_collection", tag = "collections", request_body = CollectionSpec,
    responses((status = 201, body = Collection), (status = 400, body = ApiError), (status = 409, body = ApiError)), security(("admin" = [])))]
pub async fn create(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Json(spec): Json<CollectionSpec>,
) -> ApiResult<(StatusCode, Json<Collection>)> {
    check_name(&spec.name)?;
    let rule = parse_rule(&spec)?;
    let mut w = st.db.write().await?;
    let exists =
        sqlx::query("SELECT id FROM collections WHERE name = $1").bind(&spec.name).fetch_optional(&mut *w.tx).await?;
    if exists.is_some() {
        return Err(ApiErr::conflict(
            format!("collection {:?} exists", spec.name),
            "change it with PUT (slipway collection set)",
        ));
    }
    let members = resolve_members(&mut w, &spec.members).await?;
    let id = new_id("c");
    sqlx::query("INSERT INTO collections (id, name, rule, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(&spec.name)
        .bind(rule.as_ref().map(|r| r.to_string()))
        .bind(now_ms())
        .execute(&mut *w.tx)
        .await?;
    write_members(&mut w, &id, &members).await?;
    refresh_collection(&mut w, &id, rule.as_ref()).await?;
    w.commit().await?;
    st.work.notify_waiters();
    Ok((StatusCode::CREATED, Json(load(&st, &spec.name).await?)))
}

/// Replaces a collection's rule and explicit members.
#[utoipa::path(put, path = "/v1/collections/{name}", tag = "collections", params(("name" = String, Path)), request_body = CollectionSpec,
    responses((status = 200, body = Collection), (status = 404, body = ApiError)), security(("admin" = [])))]
pub async fn update(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Path(name): Path<String>,
    Json(spec): Json<CollectionSpec>,
) -> ApiResult<Json<Collection>> {
    if spec.name != name {
        return Err(ApiErr::bad_request(
            "the body names another collection than the URL",
            "collections cannot be renamed",
        ));
    }
    let rule = parse_rule(&spec)?;
    let mut w = st.db.write().await?;
    let row = sqlx::query("SELECT id FROM collections WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no collection {name:?}")))?;
    let id = row.text("id");
    let members = resolve_members(&mut w, &spec.members).await?;
    sqlx::query("UPDATE collections SET rule = $1 WHERE id = $2")
        .bind(rule.as_ref().map(|r| r.to_string()))
        .bind(&id)
        .execute(&mut *w.tx)
        .await?;
    write_members(&mut w, &id, &members).await?;
    refresh_collection(&mut w, &id, rule.as_ref()).await?;
    w.commit().await?;
    st.work.notify_waiters();
    load(&st, &name).await.map(Json)
}

/// Deletes a collection that no deployment uses.
#[utoipa::path(delete, path = "/v1/collections/{name}", tag = "collections", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ApiError), (status = 409, body = ApiError)), security(("admin" = [])))]
pub async fn delete(State(st): State<Arc<AppState>>, _a: Admin, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let mut w = st.db.write().await?;
    let row = sqlx::query("SELECT id FROM collections WHERE name = $1")
        .bind(&name)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no collection {name:?}")))?;
    let id = row.text("id");
    let used =
        sqlx::query("SELECT id FROM deployments WHERE collection_id = $1").bind(&id).fetch_all(&mut *w.tx).await?;
    if !used.is_empty() {
        return Err(ApiErr::conflict(
            format!("collection {name:?} is the target of {} deployment(s)", used.len()),
            "deployments keep their history, cancelled ones too; make a new collection instead",
        ));
    }
    sqlx::query("DELETE FROM collection_members WHERE collection_id = $1").bind(&id).execute(&mut *w.tx).await?;
    sqlx::query("DELETE FROM collections WHERE id = $1").bind(&id).execute(&mut *w.tx).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
