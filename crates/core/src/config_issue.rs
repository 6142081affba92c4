//! The one shape of a configuration error: which key, what is wrong, and
//! how to fix it. Crates that own a config section return these; the loader
//! of the file adds the file's path.

/// A problem with one key of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {problem}. Fix: {fix}")]
pub struct ConfigIssue {
    /// Dotted path of the key, e.g. `queues.process.depth`.
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { key: key.into(), problem: problem.into(), fix: fix.into() }
    }
}
