//! Admin tokens and enrollment tokens.

use std::sync::Arc;

use crate::error::Json;
use axum::extract::State;
use axum::http::StatusCode;
use slipway_api::{TokenCreated, TokenKind, TokenRequest};

use crate::auth::{self, Admin};
use crate::db::{new_id, now_ms, Db};
use crate::error::{ApiErr, ApiResult};
use crate::AppState;

/// Makes a token and stores its hash. `uses` and `expires_in` apply to
/// enrollment tokens.
pub async fn make(db: &Db, req: &TokenRequest) -> anyhow::Result<TokenCreated> {
    let id = new_id("t");
    let now = now_ms();
    let mut w = db.write().await?;
    let token = match req.kind {
        TokenKind::Admin => {
            let token = auth::new_token(auth::ADMIN_PREFIX);
            sqlx::query("INSERT INTO admin_tokens (id, name, hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&id)
                .bind(&req.name)
                .bind(auth::token_hash(&token))
                .bind(now)
                .execute(&mut *w.tx)
                .await?;
            token
        }
        TokenKind::Enrollment => {
            let token = auth::new_token(auth::ENROLL_PREFIX);
            sqlx::query(
                "INSERT INTO enrollment_tokens (id, name, hash, uses_left, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(&req.name)
            .bind(auth::token_hash(&token))
            .bind(req.uses.map(i64::from))
            .bind(req.expires_in.map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000))))
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
            token
        }
    };
    w.commit().await?;
    Ok(TokenCreated { id, kind: req.kind, name: req.name.clone(), token })
}

/// Makes an admin or enrollment token. The value is in this answer only.
#[utoipa::path(post, path = "/v1/tokens", operation_id = "create_token", tag = "tokens", request_body = TokenRequest,
    responses((status = 201, body = TokenCreated), (status = 400, body = slipway_api::ApiError)), security(("admin" = [])))]
pub async fn create(
    State(st): State<Arc<AppState>>,
    _a: Admin,
    Json(req): Json<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    if req.name.trim().is_empty() || req.name.len() > 100 {
        return Err(ApiErr::bad_request(
            "a token needs a name of 1-100 characters",
            "name it after who or what uses it",
        ));
    }
    if req.kind == TokenKind::Admin && (req.uses.is_some() || req.expires_in.is_some()) {
        return Err(ApiErr::bad_request("uses and expires_in apply to enrollment tokens only", "leave them out"));
    }
    Ok((StatusCode::CREATED, Json(make(&st.db, &req).await?)))
}
