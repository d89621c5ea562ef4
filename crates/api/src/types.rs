//! Requests and responses of the `/v1` API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::inventory::{Firmware, Inventory};

/// An error body: what went wrong and, when there is one, what to do.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Whether a machine may receive work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MachineStatus {
    /// Enrolled without a token; an admin must approve it.
    AwaitingApproval,
    Approved,
    /// Refused by an admin; its credential no longer works.
    Rejected,
}

impl MachineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineStatus::AwaitingApproval => "awaiting_approval",
            MachineStatus::Approved => "approved",
            MachineStatus::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::AwaitingApproval, Self::Approved, Self::Rejected].into_iter().find(|v| v.as_str() == s)
    }
}

/// A machine's state in one deployment. `succeeded`, `failed` and
/// `incompatible` are final: a machine is never given the same deployment
/// again unless an admin retries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    Pending,
    Downloading,
    Applying,
    Specializing,
    Succeeded,
    Failed,
    Incompatible,
}

impl DeployState {
    pub const ALL: [DeployState; 7] = [
        Self::Pending,
        Self::Downloading,
        Self::Applying,
        Self::Specializing,
        Self::Succeeded,
        Self::Failed,
        Self::Incompatible,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Downloading => "downloading",
            Self::Applying => "applying",
            Self::Specializing => "specializing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Incompatible => "incompatible",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
    /// Work is under way on the machine.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Downloading | Self::Applying | Self::Specializing)
    }
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Incompatible)
    }
    /// Whether an agent may report `to` while the machine is in `self`.
    /// The server moves `pending` to `downloading` when it hands out the
    /// work; from there the agent reports each step, may repeat the current
    /// one (after a restart), and may fail at any step.
    pub fn agent_may_go_to(self, to: DeployState) -> bool {
        use DeployState::*;
        match (self, to) {
            (a, b) if a == b && a.is_active() => true,
            (Downloading, Applying) | (Applying, Specializing) | (Specializing, Succeeded) => true,
            (Downloading | Applying, Succeeded) => true,
            (a, Failed) => a.is_active(),
            _ => false,
        }
    }
}

/// `POST /v1/enroll`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// An enrollment token (`slw_enroll_...`). Without one the machine waits
    /// for an admin's approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub inventory: Inventory,
}

/// The machine's identity and its credential, returned once.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    pub machine_id: String,
    /// The machine's bearer credential (`slw_machine_...`); the server keeps
    /// only its hash.
    pub credential: String,
    pub status: MachineStatus,
}

/// A machine as the admin API lists it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MachineSummary {
    pub id: String,
    pub name: String,
    pub status: MachineStatus,
    pub enrolled_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    pub arch: String,
    pub memory_mb: u64,
    /// Names of the collections the machine is in.
    pub collections: Vec<String>,
    /// Its state in the newest deployment that includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_deployment: Option<MachineDeployment>,
}

/// One machine's place in one deployment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MachineDeployment {
    pub deployment_id: String,
    pub deployment: String,
    pub state: DeployState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A machine with everything known about it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MachineDetail {
    #[serde(flatten)]
    pub summary: MachineSummary,
    /// The current facts document (see `Inventory::facts`).
    #[schema(value_type = Object)]
    pub facts: serde_json::Value,
    pub facts_version: i64,
    pub deployments: Vec<MachineDeployment>,
}

/// One version of a machine's facts.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FactsVersion {
    pub version: i64,
    pub reported_at: String,
    #[schema(value_type = Object)]
    pub facts: serde_json::Value,
    /// Top-level paths that changed from the version before.
    pub changed: Vec<String>,
}

/// `POST /v1/collections` and `PUT /v1/collections/{name}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionSpec {
    pub name: String,
    /// A rule over facts (docs/rule-language.md); none means explicit
    /// members only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Machines that belong whatever the rule says (ids or names).
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Collection {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Explicit members (machine ids).
    pub members: Vec<String>,
    /// Every machine in the collection now (ids), by rule or explicitly.
    pub machines: Vec<String>,
    pub created_at: String,
}

/// What a machine must have for an image (the old HAL check).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Requirements {
    /// `uname -m` of the machines the image's programs run on, read from its
    /// ELF binaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Firmware the image boots with; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firmware: Vec<Firmware>,
    /// Free bytes the target needs.
    pub min_disk_bytes: u64,
}

/// `POST /v1/deployments`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// `NAME@VERSION`, or `NAME` for the newest version (pinned when the
    /// deployment is made).
    pub image: String,
    /// The collection to deploy to.
    pub collection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The answer file (answer.toml text). Its `file` and `env` secret
    /// references are read on the server when a machine asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Update packages (ids of packages uploaded with `PUT /v1/packages`),
    /// installed into the target after the image, before specialize.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// RFC 3339 time before which no machine starts (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// RFC 3339 time after which no machine starts any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// At most this many machines at once (0: no limit).
    #[serde(default)]
    pub max_parallel: u32,
    /// Firmware the image needs, added to what the server reads from the
    /// image itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firmware: Vec<Firmware>,
}

/// A deployment (the old advertisement).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: String,
    pub name: String,
    /// `NAME@VERSION`.
    pub image: String,
    /// The image record's BLAKE3 id.
    pub record: String,
    pub collection: String,
    pub created_at: String,
    pub start_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    pub max_parallel: u32,
    pub requirements: Requirements,
    pub has_answer: bool,
    pub packages: Vec<String>,
    pub cancelled: bool,
    /// Machines in each state.
    pub counts: BTreeMap<String, u64>,
}

/// A machine's row in a deployment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentMachine {
    pub machine_id: String,
    pub machine: String,
    pub state: DeployState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The host name the answer file gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Where the current step is (bytes or entries), when the agent said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    pub updated_at: String,
}

/// `GET /v1/deployments/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentStatus {
    pub deployment: Deployment,
    pub machines: Vec<DeploymentMachine>,
}

/// The work the server hands an agent (`GET /v1/agent/work`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    pub deployment_id: String,
    /// `NAME@VERSION`.
    pub image: String,
    /// The image record's id; `GET /v1/content/records/{record}`.
    pub record: String,
    /// The machine's state now (an agent that restarted resumes from it).
    pub state: DeployState,
    /// Whether `GET /v1/machines/{id}/deployments/{deployment}/answer` has an answer.
    pub has_answer: bool,
    /// Package ids to fetch from `GET /v1/content/packages/{id}`.
    pub packages: Vec<String>,
}

/// What kind of event an agent reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The machine moved to `state`.
    State,
    /// How far the current step is (`done` of `total`).
    Progress,
    /// A line for the machine's log.
    Log,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::State => "state",
            EventKind::Progress => "progress",
            EventKind::Log => "log",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::State, Self::Progress, Self::Log].into_iter().find(|v| v.as_str() == s)
    }
}

/// One event from an agent. `seq` numbers the machine's events from 1
/// upwards; the server stores each `(machine, seq)` once, so an agent
/// resends until acknowledged without making duplicates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentEvent {
    pub seq: u64,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// For `state` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DeployState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// When the agent saw it (RFC 3339); the server's time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// `POST /v1/agent/events`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    pub events: Vec<AgentEvent>,
}

/// The server's answer to an event batch.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct EventAck {
    /// Events stored now.
    pub accepted: u64,
    /// Events the server had already (same `seq`).
    pub duplicates: u64,
    /// State events that were stored but could not change the state (for
    /// example a step reported after the deployment was cancelled).
    pub refused: Vec<RefusedEvent>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RefusedEvent {
    pub seq: u64,
    pub reason: String,
}

/// An event as the admin API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub machine_id: String,
    pub seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DeployState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    pub at: String,
}

/// A machine's answer file for one deployment, with its secrets resolved.
/// Each secret reference that named a file or a variable on the server now
/// names `slipway-secret-N`, and `secrets[N]` holds its value; the agent
/// writes them to private files for specialize and deletes them after.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RenderedAnswer {
    pub toml: String,
    pub secrets: Vec<String>,
    /// Facts the server adds: `seq`, the machine's 1-based place in the
    /// deployment.
    pub facts: BTreeMap<String, String>,
    /// The host name the answer gives this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Every blob of an image version and where the server keeps it
/// (`GET /v1/content/manifests/{record}`). An agent fetches the blobs its
/// cache lacks, one by one (`/v1/content/blobs/{id}`) or, when it needs
/// most of a pack, the whole pack (`/v1/content/packs/{id}`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Manifest {
    pub record: String,
    pub tree: String,
    pub blobs: Vec<ManifestBlob>,
    pub packs: Vec<ManifestPack>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ManifestBlob {
    pub id: String,
    /// `data` (a file chunk) or `tree` (a directory).
    pub kind: String,
    /// Uncompressed bytes.
    pub size: u64,
    /// Index into `packs`.
    pub pack: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ManifestPack {
    pub id: String,
    /// Bytes of the pack file.
    pub size: u64,
}

/// What kind of token to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Admin,
    Enrollment,
}

/// `POST /v1/tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub kind: TokenKind,
    pub name: String,
    /// Enrollment tokens: how many machines may use it (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    /// Enrollment tokens: seconds until it expires (none: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// A new token; the value is shown once and stored only as a hash.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub id: String,
    pub kind: TokenKind,
    pub name: String,
    pub token: String,
}

/// A fleet at a glance (`GET /v1/overview`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    pub version: String,
    pub database: String,
    pub machines: u64,
    pub awaiting_approval: u64,
    pub collections: u64,
    pub deployments: u64,
    /// Machine rows of all deployments, by state.
    pub states: BTreeMap<String, u64>,
    pub events: u64,
}

/// An image in the server's store (`GET /v1/images`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ImageInfo {
    /// `NAME@VERSION`.
    pub image: String,
    pub record: String,
    pub created: String,
    pub files: u64,
    pub logical_bytes: u64,
    pub requirements: Requirements,
}

/// An uploaded update package (`PUT /v1/packages`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PackageInfo {
    /// BLAKE3 of the package file.
    pub id: String,
    pub name: String,
    pub version: String,
    pub size: u64,
}
