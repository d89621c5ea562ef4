//! The wire types of slipway's deployment API (`/v1/...`), shared by the
//! server (`slipway serve`), the agent (`slipway agent`) and the admin
//! commands. Every type here is JSON on the wire and appears in the OpenAPI
//! document the server serves at `/v1/openapi.json`.
//!
//! The protocol is specified in `docs/server-api.md`.

pub mod inventory;
pub mod rules;
pub mod types;

pub use inventory::*;
pub use types::*;

/// The API version prefix every route lives under.
pub const API_PREFIX: &str = "/v1";
