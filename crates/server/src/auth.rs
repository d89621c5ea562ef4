//! Who is asking: admins hold API tokens (`slw_admin_...`), machines hold
//! the credential they got at enrollment (`slw_machine_...`). Both are bearer
//! tokens; the database keeps only their BLAKE3 hashes, so a leaked database
//! holds no usable credential.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use slipway_api::MachineStatus;
use sqlx::Row;

use crate::db::RowExt;
use crate::error::ApiErr;
use crate::AppState;

pub const ADMIN_PREFIX: &str = "slw_admin_";
pub const ENROLL_PREFIX: &str = "slw_enroll_";
pub const MACHINE_PREFIX: &str = "slw_machine_";

/// A new secret token: the prefix and 32 random bytes in lower-case hex.
pub fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{prefix}{hex}")
}

/// What the database keeps of a token.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn bearer(parts: &Parts) -> Option<&str> {
    let h = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let t = h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))?;
    Some(t.trim())
}

const NO_TOKEN: &str = "send an admin token as 'Authorization: Bearer slw_admin_...' \
                        (make one with 'slipway server token new')";

/// An authenticated admin.
pub struct Admin {
    #[allow(dead_code)]
    pub token_id: String,
}

/// An authenticated, enrolled machine (approved or not).
pub struct Machine {
    pub id: String,
    pub status: MachineStatus,
}

/// An admin or an approved machine (content is readable by both).
pub struct Caller;

async fn admin_of(st: &AppState, token: &str) -> Result<Option<Admin>, ApiErr> {
    if !token.starts_with(ADMIN_PREFIX) {
        return Ok(None);
    }
    let row = sqlx::query("SELECT id FROM admin_tokens WHERE hash = $1")
        .bind(token_hash(token))
        .fetch_optional(&st.db.pool)
        .await?;
    Ok(row.map(|r| Admin { token_id: r.text("id") }))
}

async fn machine_of(st: &AppState, token: &str) -> Result<Option<Machine>, ApiErr> {
    if !token.starts_with(MACHINE_PREFIX) {
        return Ok(None);
    }
    let row = sqlx::query("SELECT id, status FROM machines WHERE credential_hash = $1")
        .bind(token_hash(token))
        .fetch_optional(&st.db.pool)
        .await?;
    Ok(row.map(|r| Machine {
        id: r.get::<String, _>("id"),
        status: MachineStatus::parse(&r.text("status")).unwrap_or(MachineStatus::Rejected),
    }))
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiErr> {
        let Some(t) = bearer(parts) else {
            return Err(ApiErr::unauthorized("no credential", NO_TOKEN));
        };
        match admin_of(st, t).await? {
            Some(a) => Ok(a),
            None if t.starts_with(MACHINE_PREFIX) => {
                Err(ApiErr::forbidden("machines cannot use the admin API", "use an admin token"))
            }
            None => Err(ApiErr::unauthorized("the token is not a valid admin token", NO_TOKEN)),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Machine {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiErr> {
        let Some(t) = bearer(parts) else {
            return Err(ApiErr::unauthorized(
                "no machine credential",
                "enroll with POST /v1/enroll and send the credential as 'Authorization: Bearer slw_machine_...'",
            ));
        };
        match machine_of(st, t).await? {
            Some(m) if m.status == MachineStatus::Rejected => {
                Err(ApiErr::forbidden("this machine was rejected by an admin", "enroll again with a new token"))
            }
            Some(m) => Ok(m),
            None => Err(ApiErr::unauthorized(
                "the credential is not a machine credential this server knows",
                "enroll the machine again (slipway agent --enroll TOKEN)",
            )),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiErr> {
        let Some(t) = bearer(parts) else {
            return Err(ApiErr::unauthorized("no credential", "send an admin token or a machine credential"));
        };
        if admin_of(st, t).await?.is_some() {
            return Ok(Caller);
        }
        match machine_of(st, t).await? {
            Some(m) if m.status == MachineStatus::Approved => Ok(Caller),
            Some(_) => Err(ApiErr::forbidden(
                "this machine is not approved",
                "an admin approves it with 'slipway machines approve ID'",
            )),
            None => Err(ApiErr::unauthorized("unknown credential", "send an admin token or a machine credential")),
        }
    }
}
