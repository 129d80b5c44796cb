//! The isolation matrix: what an instance sees of its host and may do, each check judged
//! `isolated`, `partly` or `shared` against the same probe run on the host.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One backend's matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Isolation {
    /// The backend.
    pub backend: String,
    /// One row per check.
    pub rows: Vec<Row>,
}

/// One check, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Row {
    /// The check (`kernel_boot_id`, `ns_net`, `can_mount`, ...).
    pub check: String,
    /// The answer from inside the instance.
    pub inside: String,
    /// The answer of the same probe on the host.
    pub host: String,
    /// `isolated`, `partly` or `shared`.
    pub verdict: String,
    /// One line on why.
    pub why: String,
}
