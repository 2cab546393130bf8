//! The agent's TOML configuration file, checked as `passthru-agent --config` checks it (and
//! as `register --config` reads its `[cloud]` proxy settings), in a directory that holds a CA
//! file (`dc-ca.pem`), a service password file (`svc.pw`, mode 0600) and a proxy credentials
//! file (`proxy.auth`, mode 0600), so relative paths can be right.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use passthru_agent::config::{AgentConfig, ConfigError};

const CERT: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQk3p\n-----END CERTIFICATE-----\n";

fn base_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("passthru-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        std::fs::write(dir.join("dc-ca.pem"), CERT).expect("the CA file");
        let pw = dir.join("svc.pw");
        std::fs::write(&pw, "s3cret\n").expect("the password file");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("mode 0600");
        let auth = dir.join("proxy.auth");
        std::fs::write(&auth, "px:s3cret\n").expect("the proxy credentials file");
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).expect("mode 0600");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The checker reads the files the configuration names: keep the fuzzer out of /proc,
    // /dev and the like (a read there could block, or never end).
    if ["..", "/proc", "/dev", "/sys", "/run"]
        .iter()
        .any(|p| text.contains(p))
    {
        return;
    }
    match AgentConfig::parse(text, "agent.toml", base_dir()) {
        Ok(config) => {
            assert!(
                !config.forests.is_empty(),
                "a configuration without a forest"
            );
            assert!(config.forests.iter().all(|f| f.ca_file.is_absolute()));
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            assert!(!problems.is_empty(), "refused without a reason");
        }
        Err(_) => {}
    }
    match AgentConfig::parse_proxy(text, "agent.toml", base_dir()) {
        Ok(Some(proxy)) => {
            assert!(proxy.address.to_string().starts_with("http://"));
            assert!(proxy.auth_file.iter().all(|f| f.is_absolute()));
        }
        Ok(None) => {}
        Err(ConfigError::Invalid { problems, .. }) => {
            assert!(!problems.is_empty(), "refused without a reason");
        }
        Err(_) => {}
    }
});
