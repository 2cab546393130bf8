//! Blocking one user's traffic to one port, for tests that prove a route is used (or not):
//! a test user to run a process as, and an iptables rule rejecting what that user sends to a
//! TCP port on loopback, removed when its guard drops (even when the test fails). Needs root
//! and iptables (`scripts/deps.sh` installs it); [`prerequisites`] says why not otherwise.

use std::process::Command;

use anyhow::{bail, Context as _};

/// Serialises this process's iptables calls: iptables-nft does not honour `-w`, and two
/// tests of one binary changing the ruleset at once can make a delete miss its rule.
static IPTABLES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `iptables -w ACTION RULE...`.
fn iptables(action: &str, rule: &[String]) -> anyhow::Result<()> {
    let _one_at_a_time = IPTABLES.lock().unwrap_or_else(|p| p.into_inner());
    let out = Command::new("iptables")
        .arg("-w")
        .arg(action)
        .args(rule)
        .output()
        .context("running iptables")?;
    if !out.status.success() {
        bail!(
            "iptables {action} {} failed: {}",
            rule.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The rule rejecting (with a TCP reset: the connection is refused at once) what `uid` sends
/// to TCP `port` on loopback.
fn reject_rule(uid: u32, port: u16) -> Vec<String> {
    let mut rule = owner_rule(uid, port, "REJECT");
    rule.extend(["--reject-with".to_string(), "tcp-reset".to_string()]);
    rule
}

/// The rule sending what `uid` sends to TCP `port` on loopback to `target` (`DROP`,
/// `REJECT`).
fn owner_rule(uid: u32, port: u16, target: &str) -> Vec<String> {
    [
        "OUTPUT",
        "-o",
        "lo",
        "-p",
        "tcp",
        "--dport",
        &port.to_string(),
        "-m",
        "owner",
        "--uid-owner",
        &uid.to_string(),
        "-j",
        target,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What `uid` sends to TCP `port` on loopback is refused while this lives.
#[derive(Debug)]
pub struct Blocked {
    rule: Option<Vec<String>>,
}

impl Blocked {
    /// Inserts the rule.
    pub fn tcp_from_uid(uid: u32, port: u16) -> anyhow::Result<Blocked> {
        let rule = reject_rule(uid, port);
        iptables("-I", &rule)?;
        Ok(Blocked { rule: Some(rule) })
    }

    /// Drops (silently: a cable pulled, a firewall that does not answer) what `uid` sends to
    /// TCP `port` on loopback.
    pub fn tcp_dropped_from_uid(uid: u32, port: u16) -> anyhow::Result<Blocked> {
        let rule = owner_rule(uid, port, "DROP");
        iptables("-I", &rule)?;
        Ok(Blocked { rule: Some(rule) })
    }

    /// Removes the rule now.
    pub fn lift(&mut self) -> anyhow::Result<()> {
        match self.rule.take() {
            Some(rule) => iptables("-D", &rule),
            None => Ok(()),
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        let _ = self.lift();
    }
}

/// The uid and gid of the system user `name`, made (no home, no shell) when missing; and a
/// check that this process is root and that iptables' owner match works here. The error says
/// why a test cannot block traffic on this machine.
pub fn prerequisites(name: &str) -> Result<(u32, u32), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    if !root {
        return Err("not running as root (iptables and a second uid need it)".into());
    }
    match Command::new("iptables")
        .args(["-w", "-S", "OUTPUT"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "iptables is not usable: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => {
            return Err(format!(
                "iptables is not installed ({e}); run scripts/deps.sh"
            ))
        }
    }
    let lookup = || {
        Command::new("getent")
            .args(["passwd", name])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
    };
    let entry = match lookup() {
        Some(e) => e,
        None => {
            let made = Command::new("useradd")
                .args(["-r", "-M", "-s", "/usr/sbin/nologin", name])
                .output()
                .map_err(|e| format!("useradd: {e}"))?;
            // Another test may have made it meanwhile.
            if !made.status.success() && lookup().is_none() {
                return Err(format!(
                    "cannot create the user {name}: {}",
                    String::from_utf8_lossy(&made.stderr).trim()
                ));
            }
            lookup().ok_or_else(|| format!("the user {name} was created but is not found"))?
        }
    };
    let fields: Vec<&str> = entry.trim().split(':').collect();
    let id = |i: usize| fields.get(i).and_then(|f| f.parse::<u32>().ok());
    let (Some(uid), Some(gid)) = (id(2), id(3)) else {
        return Err(format!("cannot read the uid of {name}: {entry}"));
    };
    // The owner match must work in this kernel: insert and delete a rule for a port nothing
    // uses.
    let probe = reject_rule(uid, 9);
    iptables("-I", &probe).map_err(|e| format!("{e:#}"))?;
    iptables("-D", &probe).map_err(|e| format!("{e:#}"))?;
    Ok((uid, gid))
}
