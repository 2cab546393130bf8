//! Whoever holds an agent's certificate cannot answer sign-ins for it: the real cloud, a real
//! agent registered for the test bed's forest (whose directory sync gives the cloud each user's
//! objectGUID), then a scripted agent connected with that agent's very certificate
//! ([`ScriptedAgent`]) in its place. Without the agent's HPKE key it cannot open the request,
//! so its `Success` carries a made-up MAC or none; with the key, it answers `Success` naming
//! another user of the tenant. Each is refused: the sign-in fails with AADSTS80005 and the
//! cloud's log says why, with the agent and the request.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure};
use passthru_proto::answer::result_message;
use passthru_proto::wire::{AgentToCloud, DirectoryUser, Outcome};
use passthru_proto::{AgentKeyPair, SealedRequest};
use passthru_testkit::bed;
use passthru_testkit::fixture::{AgentStage, PtaSetup, PtaTenant, TENANT};
use passthru_testkit::http::{SignInClient, TokenAnswer};
use passthru_testkit::procs::{fresh_dir, recorded_secret, secret_file, ForestEntry};
use passthru_testkit::scripted_agent::ScriptedAgent;
use passthru_testkit::TestUser;
use uuid::Uuid;

/// The AADSTS code of a refused agent answer.
const REFUSED: u64 = 80005;

/// The user as the directory describes it, from the cloud's synced record.
fn directory_user(t: &PtaTenant, user: &TestUser) -> anyhow::Result<DirectoryUser> {
    t.wait_synced(&user.upn)?;
    let shown: serde_json::Value =
        serde_json::from_str(&t.cloud.admin(&["--json", "user", "show", &user.upn])?)?;
    let object_guid: Uuid = shown["synced"]["object_guid"]
        .as_str()
        .ok_or_else(|| anyhow!("{} has no synced objectGUID: {shown}", user.upn))?
        .parse()?;
    Ok(DirectoryUser {
        object_guid,
        user_principal_name: shown["upn"].as_str().unwrap_or(&user.upn).to_string(),
        sam_account_name: Some(user.sam.clone()),
        display_name: shown["display_name"].as_str().map(str::to_string),
        mail: None,
        consistency_guid: None,
    })
}

/// Waits until the cloud's log has `needle` (an agent's connection ending, say).
fn wait_log(t: &PtaTenant, needle: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while !t.cloud.log().contains(needle) {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("the cloud's log never said {needle:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Signs `user` in with a password nobody knows while the scripted agent answers the request
/// with what `answer` makes of it.
async fn sign_in_answered(
    client: &SignInClient,
    agent: &mut ScriptedAgent,
    user: &TestUser,
    answer: impl FnOnce(&SealedRequest) -> AgentToCloud,
) -> anyhow::Result<(TokenAnswer, Uuid)> {
    let wrong = recorded_secret("Nobody");
    let (token, request) = tokio::join!(client.password(TENANT, &user.upn, &wrong), async {
        let request = agent.next_request().await?;
        agent.send(&answer(&request)).await?;
        anyhow::Ok(request.request_id)
    });
    Ok((token?, request?))
}

/// The answer a MAC-less impostor sends: a success for the user.
fn success(request: &SealedRequest, user: &DirectoryUser, mac: Option<String>) -> AgentToCloud {
    AgentToCloud::Result {
        request_id: request.request_id,
        outcome: Outcome::Success(user.clone()),
        agent_micros: 1,
        repeated: false,
        mac,
    }
}

/// What the holder of the key answers: the envelope opened, `user` named, the MAC right.
fn opened_success(
    keys: &AgentKeyPair,
    request: &SealedRequest,
    user: &DirectoryUser,
) -> AgentToCloud {
    let key = keys.open_bound(request).ok().map(|(_, key)| key);
    result_message(
        request.request_id,
        Outcome::Success(user.clone()),
        1,
        false,
        key.as_ref(),
    )
}

fn ensure_refused(
    t: &PtaTenant,
    what: &str,
    (token, request): &(TokenAnswer, Uuid),
    log_says: &str,
) -> anyhow::Result<()> {
    ensure!(
        !token.ok() && token.code() == Some(REFUSED),
        "{what}: expected AADSTS{REFUSED}, got {} {}",
        token.status,
        token.body
    );
    let log = t.cloud.log();
    let line = log
        .lines()
        .find(|l| l.contains(&request.to_string()) && l.contains("agent answer refused"))
        .ok_or_else(|| anyhow!("{what}: the cloud's log does not name request {request}"))?;
    ensure!(line.contains("WARN"), "{what}: {line}");
    ensure!(line.contains(log_says), "{what}: {line}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_without_the_key_or_for_another_user_are_refused() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let victim = corp.user("spare7")?.clone();
    let other = corp.user("good")?.clone();
    let t = PtaSetup::new(&fresh_dir("agent-answers")?, &corp)
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    // Directory sync (the forest's administrator reads it) gives the cloud the objectGUIDs.
    let sync_password = secret_file(&corp.admin_password)?;
    let mut agent = t.start_agent(&[ForestEntry::for_forest(&corp).with_sync(
        &corp.admin_upn,
        &sync_password,
        3600,
    )])?;
    t.enable_pta()?;
    let victim_dir = directory_user(&t, &victim)?;
    let other_dir = directory_user(&t, &other)?;
    ensure!(victim_dir.object_guid != other_dir.object_guid);
    // The real agent's answers are authenticated: the right password signs in.
    let client = t.sign_in()?;
    let real = client
        .password(TENANT, &victim.upn, &victim.password)
        .await?;
    ensure!(real.ok(), "the real agent's answer: {}", real.body);

    // The real agent gives way to one that has its certificate.
    agent.stop_with(15);
    wait_log(&t, "agent disconnected")?;
    let (mut impostor, keys) =
        ScriptedAgent::connect(&agent.state_dir, &[corp.upn_suffix.as_str()]).await?;
    wait_log(&t, "host=scripted-agent")?;

    // 1. Without the HPKE key: a success with a made-up MAC, then with none.
    let made_up = sign_in_answered(&client, &mut impostor, &victim, |r| {
        success(
            r,
            &victim_dir,
            Some("bm90IHRoZSBrZXkgdGhhdCBvcGVuZWQgaXQgISEhISE=".into()),
        )
    })
    .await?;
    ensure_refused(&t, "a made-up MAC", &made_up, "does not match")?;
    let none = sign_in_answered(&client, &mut impostor, &victim, |r| {
        success(r, &victim_dir, None)
    })
    .await?;
    ensure_refused(&t, "no MAC", &none, "carries no MAC")?;

    // 2. With the key, a success for the victim's name that names another user.
    let swapped = sign_in_answered(&client, &mut impostor, &victim, |r| {
        opened_success(&keys, r, &other_dir)
    })
    .await?;
    ensure_refused(
        &t,
        "another user's objectGUID",
        &swapped,
        "names another object",
    )?;

    // Control: the same scripted agent, key in hand, naming the user's own object, is an
    // agent of the tenant (this is what the HPKE key, not the certificate, is needed for).
    let (token, _) = sign_in_answered(&client, &mut impostor, &victim, |r| {
        opened_success(&keys, r, &victim_dir)
    })
    .await?;
    ensure!(token.ok(), "the key holder's own answer: {}", token.body);
    Ok(())
}
