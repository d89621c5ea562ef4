//! Progress reporting. The library says what it is doing through this trait;
//! the CLI draws bars on a terminal and plain lines elsewhere.

/// Receives progress from long operations. All methods have empty defaults.
pub trait Progress: Sync {
    /// A new phase begins (`"scanning"`, `"capturing"`, ...), with the total
    /// work in bytes when known.
    fn phase(&self, _name: &str, _total_bytes: Option<u64>) {}
    /// `bytes` more of the current phase are done.
    fn advance(&self, _bytes: u64) {}
    /// A warning or note for the user (never an error: those are returned).
    fn note(&self, _message: &str) {}
    /// The operation ended.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
