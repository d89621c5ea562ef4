//! Image content over HTTP: records, manifests, blobs and packs, each
//! addressed by its BLAKE3 id. Everything but the manifest is immutable, so
//! responses say `Cache-Control: public, max-age=31536000, immutable` and any
//! HTTP cache or distribution point may keep them; the agent checks every
//! byte against its id, so none of them has to be trusted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::Path;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use slipway_api::{Manifest, ManifestBlob, ManifestPack};
use slipway_store::{image_blobs, BlobId, BlobKind, ReadError};

use crate::auth::Caller;
use crate::error::{ApiErr, ApiResult};
use crate::AppState;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A frame: its pack and its offset there.
type FrameKey = (BlobId, u64);

/// Decompressed frames shared by every request, most recently used first,
/// within a byte budget: twenty agents fetching the same image decompress
/// each frame once.
pub struct FrameCache {
    frames: VecDeque<(FrameKey, Arc<Vec<u8>>)>,
    bytes: usize,
    budget: usize,
}

impl FrameCache {
    pub fn new(budget: usize) -> Mutex<FrameCache> {
        Mutex::new(FrameCache { frames: VecDeque::new(), bytes: 0, budget })
    }

    fn get(&mut self, key: FrameKey) -> Option<Arc<Vec<u8>>> {
        let i = self.frames.iter().position(|(k, _)| *k == key)?;
        let hit = self.frames.remove(i)?;
        let f = hit.1.clone();
        self.frames.push_front(hit);
        Some(f)
    }

    fn put(&mut self, key: FrameKey, f: Arc<Vec<u8>>) {
        self.bytes += f.len();
        self.frames.push_front((key, f));
        while self.bytes > self.budget && self.frames.len() > 1 {
            if let Some((_, old)) = self.frames.pop_back() {
                self.bytes -= old.len();
            }
        }
    }
}

fn parse_id(s: &str) -> ApiResult<BlobId> {
    s.parse::<BlobId>()
        .map_err(|_| ApiErr::bad_request(format!("{s:?} is not a BLAKE3 id"), "ids are 64 lower-case hex digits"))
}

/// Raw bytes, for the OpenAPI document (a binary string, not an array of
/// numbers).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

fn immutable(body: Vec<u8>, etag: &str, content_type: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        h.insert(header::ETAG, v);
    }
    r
}

fn read_error(e: ReadError) -> ApiErr {
    match e {
        ReadError::Missing(id) => ApiErr::not_found(format!("blob {id} is not in the server's store")),
        other => ApiErr::internal(other),
    }
}

/// An image record (JSON), as stored: its BLAKE3 hash is its id.
#[utoipa::path(get, path = "/v1/content/records/{id}", tag = "content", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/json", body = serde_json::Value), (status = 404, body = slipway_api::ApiError)),
    security(("admin" = []), ("machine" = [])))]
pub async fn record(State(st): State<Arc<AppState>>, _c: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let st2 = st.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        let store = st2.store.read().expect("store lock");
        store.read_record(&id).map(|r| r.encode())
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(|e| ApiErr::not_found(format!("image record {id}: {e:#}")))?;
    Ok(immutable(bytes, &id.to_string(), "application/json"))
}

/// Every blob of an image version with the pack that holds it. Not
/// immutable (a `gc` may repack), so caches must revalidate.
#[utoipa::path(get, path = "/v1/content/manifests/{record}", tag = "content", params(("record" = String, Path)),
    responses((status = 200, body = Manifest), (status = 404, body = slipway_api::ApiError)), security(("admin" = []), ("machine" = [])))]
pub async fn manifest(State(st): State<Arc<AppState>>, _c: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let cached = st.manifests.lock().expect("manifest cache").get(&id).cloned();
    if let Some((body, packs)) = cached {
        // A gc may have repacked since: use the cached list only while its
        // packs are all still there.
        let store = st.store.read().expect("store lock");
        if packs.iter().all(|p| store.pack_path(p).exists()) {
            return Ok(manifest_response(body));
        }
    }
    let st2 = st.clone();
    let (body, pack_ids) = tokio::task::spawn_blocking(move || -> ApiResult<(Arc<Vec<u8>>, Vec<BlobId>)> {
        let mut store = st2.store.write().expect("store lock");
        let record = store.read_record(&id).map_err(|e| ApiErr::not_found(format!("image record {id}: {e:#}")))?;
        store.reload_index().map_err(ApiErr::from)?;
        let mut r = store.reader();
        let blobs = image_blobs(&mut r, &record.root.tree).map_err(ApiErr::from)?;
        drop(r);
        let ix = store.index();
        let mut packs: Vec<ManifestPack> = Vec::new();
        let mut pack_pos: HashMap<BlobId, u32> = HashMap::new();
        let mut out = Vec::with_capacity(blobs.len());
        for (b, kind) in blobs {
            let loc = ix
                .get(&b)
                .ok_or_else(|| ApiErr::internal(format!("blob {b} of image record {id} is missing from the store")))?;
            let pack = ix.pack_id(loc.pack);
            let pos = *pack_pos.entry(pack).or_insert_with(|| {
                let size = std::fs::metadata(store.pack_path(&pack)).map(|m| m.len()).unwrap_or(0);
                packs.push(ManifestPack { id: pack.to_string(), size });
                (packs.len() - 1) as u32
            });
            out.push(ManifestBlob {
                id: b.to_string(),
                kind: if kind == BlobKind::Tree { "tree" } else { "data" }.to_string(),
                size: loc.len as u64,
                pack: pos,
            });
        }
        let ids = pack_pos.keys().copied().collect();
        let m = Manifest { record: id.to_string(), tree: record.root.tree.to_string(), blobs: out, packs };
        Ok((Arc::new(serde_json::to_vec(&m).map_err(anyhow::Error::from)?), ids))
    })
    .await
    .map_err(anyhow::Error::from)??;
    st.manifests.lock().expect("manifest cache").insert(id, (body.clone(), pack_ids));
    Ok(manifest_response(body))
}

fn manifest_response(body: Arc<Vec<u8>>) -> Response {
    let mut r = Response::new(Body::from(body.as_ref().clone()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// One blob, uncompressed.
#[utoipa::path(get, path = "/v1/content/blobs/{id}", tag = "content", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Binary), (status = 404, body = slipway_api::ApiError)),
    security(("admin" = []), ("machine" = [])))]
pub async fn blob(State(st): State<Arc<AppState>>, _c: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let st2 = st.clone();
    let data = tokio::task::spawn_blocking(move || -> ApiResult<Vec<u8>> {
        let store = st2.store.read().expect("store lock");
        let loc = *store.index().get(&id).ok_or(ReadError::Missing(id)).map_err(read_error)?;
        let pack = store.index().pack_id(loc.pack);
        let key = (pack, loc.frame_off);
        let cached = st2.frames.lock().expect("frame cache").get(key);
        let frame = match cached {
            Some(f) => f,
            None => {
                let f = store.open_pack(&pack, &id).map_err(read_error)?;
                let frame = Arc::new(store.read_frame(&f, &pack, &loc, &id).map_err(read_error)?);
                st2.frames.lock().expect("frame cache").put(key, frame.clone());
                frame
            }
        };
        store.blob_in_frame(&frame, &pack, &loc, &id).map(<[u8]>::to_vec).map_err(read_error)
    })
    .await
    .map_err(anyhow::Error::from)??;
    Ok(immutable(data, &id.to_string(), "application/octet-stream"))
}

/// A whole pack file, as stored (docs/store-format.md, section 7).
#[utoipa::path(get, path = "/v1/content/packs/{id}", tag = "content", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Binary), (status = 404, body = slipway_api::ApiError)),
    security(("admin" = []), ("machine" = [])))]
pub async fn pack(State(st): State<Arc<AppState>>, _c: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let path = {
        let store = st.store.read().expect("store lock");
        if !store.index().packs().contains(&id) {
            return Err(ApiErr::not_found(format!("pack {id} is not in the server's store")));
        }
        store.pack_path(&id)
    };
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiErr::not_found(format!("pack {id} is gone (a gc may have repacked it); fetch the manifest again"))
        } else {
            ApiErr::internal(format!("reading {}: {e}", path.display()))
        }
    })?;
    Ok(immutable(bytes, &id.to_string(), "application/octet-stream"))
}

/// Answers 304 for a conditional request on an immutable URL.
pub async fn not_modified(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let conditional = req.headers().contains_key(header::IF_NONE_MATCH);
    let path = req.uri().path().to_string();
    if conditional && path.starts_with("/v1/content/") && !path.starts_with("/v1/content/manifests/") {
        let etag = req.headers().get(header::IF_NONE_MATCH).cloned();
        let resp = next.run(req).await;
        if resp.status() == StatusCode::OK && resp.headers().get(header::ETAG) == etag.as_ref() {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
            if let Some(e) = etag {
                r.headers_mut().insert(header::ETAG, e);
            }
            return r;
        }
        return resp;
    }
    next.run(req).await
}

/// Where uploaded update packages are kept: `DATA/packages/<blake3>.slwpkg`.
fn package_path(st: &AppState, id: &str) -> std::path::PathBuf {
    st.data.join("packages").join(format!("{id}.slwpkg"))
}

/// Uploads an update package (the file's bytes). The server opens it as
/// `slipway integrate --image` would: its signature must verify against a
/// key the store trusts (`STORE/trusted.d`). It is kept under its BLAKE3
/// id, which deployments name in `packages`.
#[utoipa::path(put, path = "/v1/packages", tag = "images", request_body(content = Binary, content_type = "application/octet-stream"),
    responses((status = 201, body = slipway_api::PackageInfo), (status = 400, body = slipway_api::ApiError)), security(("admin" = [])))]
pub async fn upload_package(
    State(st): State<Arc<AppState>>,
    _a: crate::auth::Admin,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, axum::Json<slipway_api::PackageInfo>)> {
    let id = blake3::hash(&body).to_hex().to_string();
    let st2 = st.clone();
    let id2 = id.clone();
    let info = tokio::task::spawn_blocking(move || -> ApiResult<slipway_api::PackageInfo> {
        let dir = st2.data.join("packages");
        std::fs::create_dir_all(&dir).map_err(|e| ApiErr::internal(format!("creating {}: {e}", dir.display())))?;
        let tmp = dir.join(format!(".{id2}.tmp"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)
                .map_err(|e| ApiErr::internal(format!("creating {}: {e}", tmp.display())))?;
            f.write_all(&body)
                .and_then(|_| f.sync_all())
                .map_err(|e| ApiErr::internal(format!("writing {}: {e}", tmp.display())))?;
        }
        let store_keys = {
            let store = st2.store.read().expect("store lock");
            slipway_package::keys::trusted_in(&slipway_package::keys::store_trust_dir(store.path()))
                .map_err(ApiErr::from)?
        };
        let opened = slipway_package::container::Package::open(
            &tmp,
            &slipway_package::container::OpenOptions { trusted: &store_keys, allow_unsigned: false },
        );
        let pkg = match opened {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(ApiErr::bad_request(
                    format!("the package is refused: {e}"),
                    "sign it with a key the server's store trusts ('slipway key trust PUB --store STORE')",
                ));
            }
        };
        std::fs::rename(&tmp, package_path(&st2, &id2))
            .map_err(|e| ApiErr::internal(format!("storing the package: {e}")))?;
        Ok(slipway_api::PackageInfo {
            id: id2,
            name: pkg.manifest.id.clone(),
            version: pkg.manifest.version.clone(),
            size: body.len() as u64,
        })
    })
    .await
    .map_err(anyhow::Error::from)??;
    let mut w = st.db.write().await?;
    sqlx::query(
        "INSERT INTO packages (id, name, version, size, uploaded_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&id)
    .bind(&info.name)
    .bind(&info.version)
    .bind(info.size as i64)
    .bind(crate::db::now_ms())
    .execute(&mut *w.tx)
    .await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(info)))
}

/// An uploaded update package, by its BLAKE3 id.
#[utoipa::path(get, path = "/v1/content/packages/{id}", tag = "content", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Binary), (status = 404, body = slipway_api::ApiError)),
    security(("admin" = []), ("machine" = [])))]
pub async fn package(State(st): State<Arc<AppState>>, _c: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?.to_string();
    let bytes = tokio::fs::read(package_path(&st, &id))
        .await
        .map_err(|_| ApiErr::not_found(format!("no package {id} on this server")))?;
    Ok(immutable(bytes, &id, "application/octet-stream"))
}
