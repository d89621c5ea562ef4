//! slipway's deployment agent (`slipway agent`) and the API client the
//! admin commands share: inventory from /sys and /proc, enrollment, long
//! poll for work, chunk fetch by id into a local cache store, apply,
//! specialize, and status events that survive restarts of either side.

pub mod client;
pub mod fetch;
pub mod inventory;
pub mod load;
mod retry;
pub mod run;

pub use client::{Client, Connection};
pub use retry::retrying;
pub use run::{run, AgentOptions};
