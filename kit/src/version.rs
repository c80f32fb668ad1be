//! Which build answered, and on which replica: told the same way by every
//! service, in `GET /version`, in `<service>_build_info`, in its first log
//! line and on the pages, so a rolling update shows who runs what.

/// The crate version (the workspace's: every service shares it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from: `GIT_COMMIT` at build time
/// (the Dockerfile's build argument, which compose and e2e set from
/// `git rev-parse --short HEAD`), else `unknown`. Read with `option_env!`
/// rather than from git, so a build needs neither git nor a checkout;
/// cargo rebuilds when the variable changes.
pub const COMMIT: &str = match option_env!("GIT_COMMIT") {
    Some(commit) if !commit.is_empty() => commit,
    _ => "unknown",
};

/// What `GET /version` answers: `{"commit":"4f2a9c1","service":"vote",
/// "version":"0.1.0"}`, its keys in alphabetical order (as `jq -S` and
/// most JSON tools print them, so two replicas' answers compare as text).
pub fn json(service: &str) -> String {
    // Written in that order too: serde_json keeps insertion order when any
    // crate in the build turns on its `preserve_order` feature.
    serde_json::json!({
        "commit": COMMIT,
        "service": service,
        "version": VERSION,
    })
    .to_string()
}

/// This replica's name: the container ID under Docker (its hostname), the
/// pod's name under Kubernetes, else the machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_names_the_service_and_the_build_in_key_order() {
        let text = json("vote");
        assert_eq!(
            text,
            format!(r#"{{"commit":"{COMMIT}","service":"vote","version":"{VERSION}"}}"#)
        );
        assert_eq!(VERSION, env!("CARGO_PKG_VERSION"));
        assert!(!COMMIT.is_empty());
    }
}
