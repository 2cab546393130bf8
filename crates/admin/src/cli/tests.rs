//! The text the CLI prints from the typed answers, line for line (scripts and the end-to-end
//! tests read it): absent values as `-`, times in RFC 3339 (`never` when absent), numbers as
//! JSON writes them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::agents::{agent_lines, release_lines};
use super::directory::{group_lines, group_list_lines, status_lines};
use super::output::{answer, json_number};
use super::tenant::{setting_lines, sign_in_lines};
use crate::api;

const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);
const A_TEXT: &str = "00000000-0000-0000-0000-00000000000a";
const B_TEXT: &str = "00000000-0000-0000-0000-00000000000b";

/// `t` as the CLI gets it: written as JSON text and read back as its type.
fn wire<T: Serialize + serde::de::DeserializeOwned + utoipa::ToSchema>(t: &T) -> anyhow::Result<T> {
    let v: Value = serde_json::from_str(&serde_json::to_string(t)?)?;
    answer(&v)
}

#[test]
fn agents() -> anyhow::Result<()> {
    let dc = |up, url: &str| api::DomainController {
        forest: "corp".into(),
        url: url.into(),
        up,
        since: 0,
        consecutive_failures: 0,
    };
    let list = wire(&api::AgentList {
        agents: vec![
            api::Agent {
                id: A,
                host: "dc-agent".into(),
                version: "1.2".into(),
                status: "Active".into(),
                last_seen: Some(1_800_000_000),
                source_ip: Some("10.0.0.1".into()),
                cert_expires_at: 1_900_000_000,
                forests: vec!["corp.example".into(), "eu.corp.example".into()],
                in_flight: 1,
                requests_served: 42,
                failures: BTreeMap::from([("1326".into(), 3), ("1327".into(), 1)]),
                errors: BTreeMap::new(),
                round_trip_ms: api::RoundTrip {
                    p50: Some(12.0),
                    p99: Some(99.96),
                },
                revoked: false,
                domain_controllers: vec![dc(true, "ldaps://dc1:636"), dc(false, "ldaps://dc2:636")],
            },
            api::Agent {
                id: B,
                host: "spare".into(),
                version: "1.2".into(),
                status: "Inactive".into(),
                last_seen: None,
                source_ip: None,
                cert_expires_at: 1_900_000_000,
                forests: Vec::new(),
                in_flight: 0,
                requests_served: 0,
                failures: BTreeMap::new(),
                errors: BTreeMap::new(),
                round_trip_ms: api::RoundTrip {
                    p50: None,
                    p99: None,
                },
                revoked: false,
                domain_controllers: Vec::new(),
            },
        ],
    })?;
    assert_eq!(
        agent_lines(&list),
        [
            "ID\tHOST\tVERSION\tSTATUS\tLAST SEEN\tSOURCE IP\tFORESTS\tCERT EXPIRES\tSERVED\tFAILURES\tP50 MS\tP99 MS\tDCS UP".to_string(),
            format!("{A_TEXT}\tdc-agent\t1.2\tActive\t2027-01-15T08:00:00Z\t10.0.0.1\tcorp.example,eu.corp.example\t2030-03-17T17:46:40Z\t42\t1326:3,1327:1\t12.0\t100.0\t1/2"),
            "  domain controller down: ldaps://dc2:636 (corp)".to_string(),
            format!("{B_TEXT}\tspare\t1.2\tInactive\tnever\t-\t\t2030-03-17T17:46:40Z\t0\t-\t-\t-\t-"),
        ]
    );
    Ok(())
}

#[test]
fn releases() -> anyhow::Result<()> {
    let list = wire(&api::ReleaseList {
        releases: vec![api::Release {
            version: "0.2.0".into(),
            target: "x86_64-linux".into(),
            sha256: "ab".repeat(32),
            size: 1234,
            min_cloud_version: "0.1.0".into(),
            added_at: 1_800_000_000,
            added_by: "admin@contoso.example".into(),
        }],
        agent_updates: "auto".into(),
        offered: Some("0.2.0".into()),
    })?;
    assert_eq!(
        release_lines(&list),
        [
            "VERSION\tTARGET\tSIZE\tSHA256\tMIN CLOUD\tADDED\tBY".to_string(),
            format!(
                "0.2.0\tx86_64-linux\t1234\t{}\t0.1.0\t2027-01-15T08:00:00Z\tadmin@contoso.example",
                "ab".repeat(32)
            ),
            "agent_updates: auto; offered now: 0.2.0".to_string(),
        ]
    );
    let none = wire(&api::ReleaseList {
        releases: vec![],
        agent_updates: "off".into(),
        offered: None,
    })?;
    assert_eq!(
        release_lines(&none).last().map(String::as_str),
        Some("agent_updates: off; offered now: none")
    );
    Ok(())
}

fn group(named: bool) -> api::Group {
    api::Group {
        id: A,
        name: named.then(|| "Sales".into()),
        display_name: named.then(|| "Sales team".into()),
        mail: None,
        dn: "CN=Sales,DC=corp,DC=example".into(),
        forest: "corp.example".into(),
        object_guid: B,
        immutable_id: "aW1t".into(),
        synced_at: 1_800_000_000,
        members: vec![
            api::GroupMember {
                kind: "user".into(),
                object_guid: B,
                id: Some(A),
                name: Some("alice@corp.example".into()),
            },
            api::GroupMember {
                kind: "unknown".into(),
                object_guid: A,
                id: None,
                name: None,
            },
        ],
    }
}

#[test]
fn groups() -> anyhow::Result<()> {
    let summary = |g: api::Group| api::SyncedGroup {
        id: g.id,
        name: g.name,
        display_name: g.display_name,
        mail: g.mail,
        dn: g.dn,
        forest: g.forest,
        object_guid: g.object_guid,
        immutable_id: g.immutable_id,
        synced_at: g.synced_at,
    };
    let page = wire(&api::GroupList {
        groups: vec![summary(group(true)), summary(group(false))],
        next_skiptoken: Some("Sales".into()),
    })?;
    assert_eq!(
        group_list_lines(&page),
        [
            format!("{A_TEXT}\tSales\tCN=Sales,DC=corp,DC=example"),
            format!("{A_TEXT}\t-\tCN=Sales,DC=corp,DC=example"),
            "more: --skiptoken 'Sales'".to_string(),
        ]
    );
    let last = wire(&api::GroupList {
        groups: Vec::new(),
        next_skiptoken: None,
    })?;
    assert!(group_list_lines(&last).is_empty());

    assert_eq!(
        group_lines(&wire(&group(true))?),
        [
            "name         Sales".to_string(),
            format!("id           {A_TEXT}"),
            "display_name Sales team".to_string(),
            "mail         -".to_string(),
            "dn           CN=Sales,DC=corp,DC=example".to_string(),
            "forest       corp.example".to_string(),
            format!("object_guid  {B_TEXT}"),
            "synced_at    2027-01-15T08:00:00Z".to_string(),
            format!("  user\talice@corp.example\t{B_TEXT}"),
            format!("  unknown\t-\t{A_TEXT}"),
        ]
    );
    assert_eq!(group_lines(&wire(&group(false))?)[0], "name         -");
    Ok(())
}

#[test]
fn sync_status() -> anyhow::Result<()> {
    let forest = |busy: bool| api::SyncForest {
        forest: if busy { "corp.example" } else { "eu.example" }.into(),
        holder_agent_id: busy.then_some(A),
        lease_since: busy.then_some(1),
        interval_seconds: 300,
        last_full_at: busy.then_some(1_800_000_000),
        last_success_at: busy.then_some(1_800_000_060),
        last_run_at: None,
        last_error: busy.then(|| "LDAP: server busy".into()),
        last_objects: None,
        full_total: None,
        conflicts: if busy {
            vec!["bob@corp.example: UPN taken by a cloud user".into()]
        } else {
            Vec::new()
        },
        users: 12,
        groups: 3,
        running: busy.then(|| api::SyncRun {
            forest: "corp.example".into(),
            run_id: B,
            agent_id: A,
            full: true,
            started_at: 1_800_000_000,
            objects: 1234,
            objects_per_second: 41.0,
            estimated_total: Some(5000),
            eta_seconds: Some(92),
        }),
    };
    let status = wire(&api::SyncStatus {
        sync_required: true,
        forests: vec![forest(true), forest(false)],
    })?;
    assert_eq!(
        status_lines(&status),
        [
            "sync_required true".to_string(),
            format!("corp.example\tagent {A_TEXT}\tusers 12\tgroups 3\tevery 300 s"),
            "  last success 2027-01-15T08:01:00Z  last full import 2027-01-15T08:00:00Z".into(),
            "  last error: LDAP: server busy".into(),
            "  not applied: bob@corp.example: UPN taken by a cloud user".into(),
            "  full import in progress: 1234 objects, 41.0/s, about 92 s left".into(),
            "eu.example\tagent -\tusers 12\tgroups 3\tevery 300 s".into(),
            "  last success never  last full import never".into(),
        ]
    );
    let none = wire(&api::SyncStatus {
        sync_required: false,
        forests: Vec::new(),
    })?;
    assert_eq!(
        status_lines(&none),
        [
            "sync_required false",
            "No forest is synced: give an agent a service account for a forest."
        ]
    );
    Ok(())
}

/// A rate is printed as the JSON number the cloud sent.
#[test]
fn rates_print_as_json_numbers() -> anyhow::Result<()> {
    for x in [0.0, 41.0, 41.5, 0.1, 1_234_567.8, 1e21, 3e-7] {
        assert_eq!(json_number(x), serde_json::to_string(&x)?);
    }
    assert_eq!(json_number(f64::NAN), "-");
    Ok(())
}

#[test]
fn settings() -> anyhow::Result<()> {
    let all = wire(&api::Settings {
        settings: vec![
            api::Setting {
                key: "lockout_threshold".into(),
                value: "10".into(),
                help: "failed attempts before lockout, 1 to 100".into(),
            },
            api::Setting {
                key: "sign_in_attribute".into(),
                value: "userPrincipalName".into(),
                help: String::new(),
            },
        ],
    })?;
    let list: Vec<&api::Setting> = all.settings.iter().collect();
    assert_eq!(
        setting_lines(&list),
        [
            "lockout_threshold         10                  failed attempts before lockout, 1 to 100",
            "sign_in_attribute         userPrincipalName   ",
        ]
    );
    Ok(())
}

#[test]
fn sign_ins() -> anyhow::Result<()> {
    let line = |agent_id, other_agents: Vec<Uuid>| api::SignIn {
        id: 7,
        app_name: None,
        agent_host: None,
        time_ms: 1_800_000_000_999,
        time: "2027-01-15T08:00:00.999Z".into(),
        username: "alice@corp.example".into(),
        client_id: None,
        result: "failure".into(),
        aadsts: Some(50126),
        win32: Some(1326),
        agent_id,
        other_agents,
        latency_ms: Some(12),
        correlation_id: "c0ffee".into(),
        client_ip: None,
    };
    let bare = api::SignIn {
        result: "success".into(),
        aadsts: None,
        win32: None,
        latency_ms: None,
        ..line(None, Vec::new())
    };
    let list = wire(&api::SignInList {
        signins: vec![line(Some(A), Vec::new()), line(Some(A), vec![B, B]), bare],
        retention_days: 30,
        next_skiptoken: None,
    })?;
    let head = "2027-01-15T08:00:00Z\talice@corp.example";
    assert_eq!(
        sign_in_lines(&list),
        [
            format!("{head}\tfailure\tAADSTS 50126\tWin32 1326\tagent {A_TEXT}\t12 ms\tc0ffee"),
            format!("{head}\tfailure\tAADSTS 50126\tWin32 1326\tagent {A_TEXT} (after {B_TEXT}, {B_TEXT})\t12 ms\tc0ffee"),
            format!("{head}\tsuccess\tAADSTS -\tWin32 -\tagent -\t- ms\tc0ffee"),
        ]
    );
    Ok(())
}

/// `PASSTHRU_URL`, `PASSTHRU_TENANT` and `PASSTHRU_CA_FILE` stand in for `--url`, `--tenant`
/// and `--ca-file`; a flag given wins over its variable. (The only test of this crate that
/// sets these variables.)
#[test]
fn the_environment_supplies_url_tenant_and_ca_file() -> anyhow::Result<()> {
    use clap::Parser as _;
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        admin: super::AdminArgs,
    }
    std::env::set_var("PASSTHRU_URL", "https://env.example:8443");
    std::env::set_var("PASSTHRU_TENANT", "from-env");
    std::env::set_var("PASSTHRU_CA_FILE", "/etc/passthru/env-ca.pem");
    let from_env = Cli::try_parse_from(["admin", "user", "list"])?;
    let from_flags = Cli::try_parse_from([
        "admin",
        "--url",
        "https://flag.example",
        "--tenant",
        "from-flag",
        "--ca-file",
        "/tmp/flag-ca.pem",
        "user",
        "list",
    ])?;
    std::env::remove_var("PASSTHRU_URL");
    std::env::remove_var("PASSTHRU_TENANT");
    std::env::remove_var("PASSTHRU_CA_FILE");
    let missing = Cli::try_parse_from(["admin", "user", "list"]);
    assert_eq!(from_env.admin.url, "https://env.example:8443");
    assert_eq!(from_env.admin.tenant, "from-env");
    assert_eq!(
        from_env.admin.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/passthru/env-ca.pem"))
    );
    assert_eq!(from_flags.admin.url, "https://flag.example");
    assert_eq!(from_flags.admin.tenant, "from-flag");
    assert_eq!(
        from_flags.admin.ca_file.as_deref(),
        Some(std::path::Path::new("/tmp/flag-ca.pem"))
    );
    let err = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("--url"), "{err}");
    Ok(())
}

#[test]
fn device_code_is_a_flag_of_admin_and_logout_a_command() -> anyhow::Result<()> {
    use clap::Parser as _;
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        admin: super::AdminArgs,
    }
    let base = ["admin", "--url", "https://x", "--tenant", "contoso"];
    let with = |rest: &[&'static str]| Cli::try_parse_from(base.iter().chain(rest.iter()).copied());
    let device = with(&["--device-code", "agents", "list"])?;
    assert!(device.admin.device_code);
    assert!(!with(&["agents", "list"])?.admin.device_code);
    let logout = with(&["logout"])?;
    assert!(matches!(logout.admin.command, super::AdminCommand::Logout));
    // A flag of `admin`, not of every subcommand.
    assert!(with(&["agents", "list", "--device-code"]).is_err());
    Ok(())
}
