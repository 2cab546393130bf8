//! This computer's host name (sent at registration and in Hello).

/// The host name from the kernel (or `/etc/hostname`, or `$HOSTNAME`), else `unknown-host`.
pub fn host_name() -> String {
    let candidates = [
        std::fs::read_to_string("/proc/sys/kernel/hostname").ok(),
        std::fs::read_to_string("/etc/hostname").ok(),
        std::env::var("HOSTNAME").ok(),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|h| h.trim().to_string())
        .find(|h| !h.is_empty() && h.len() <= 255)
        .unwrap_or_else(|| "unknown-host".to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_empty() {
        let h = super::host_name();
        assert!(!h.is_empty() && h.len() <= 255 && !h.contains('\n'));
    }
}
