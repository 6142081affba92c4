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
        Self {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Refuses keys that are set but do not apply to the section's `kind`.
/// Each entry: (key, whether it is set, the kinds it applies to).
pub fn reject_foreign_keys<K: Copy + PartialEq>(
    prefix: &str,
    kind: K,
    name: impl Fn(K) -> &'static str,
    keys: &[(&str, bool, &[K])],
) -> Result<(), ConfigIssue> {
    for &(key, present, kinds) in keys {
        if present && !kinds.contains(&kind) {
            let valid: Vec<&str> = kinds.iter().map(|k| name(*k)).collect();
            return Err(ConfigIssue::new(
                format!("{prefix}.{key}"),
                format!(
                    "does not apply to kind \"{}\" (only to {})",
                    name(kind),
                    valid.join(", ")
                ),
                format!("remove {key}, or change kind"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_keys_are_named() {
        let err = reject_foreign_keys("s", 1u8, |_| "one", &[("path", true, &[2u8])])
            .expect_err("foreign");
        assert_eq!(err.key, "s.path");
    }
}
