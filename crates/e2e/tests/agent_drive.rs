//! The benchmark's stand-in for the cloud (`passthru_testkit::agent_drive`, behind
//! `passthru-bench agent`) speaks the agent protocol the real agent expects: a real agent,
//! registered with the real cloud and then pointed at the driver, answers its sealed requests
//! against the test bed's forest (success for the right password, 1326 for a wrong one) and
//! refuses a replayed request. The driver checks each answer's MAC as the cloud does.

use std::time::Duration;

use anyhow::ensure;
use passthru_testkit::agent_drive::{seal_requests, AgentDriver, SealedFrame};
use passthru_testkit::bed;
use passthru_testkit::fixture::{AgentStage, PtaSetup};
use passthru_testkit::procs::{fresh_dir, recorded_secret, ForestEntry};
use passthru_testkit::{AccountState, TestUser};

#[tokio::test(flavor = "multi_thread")]
async fn the_driver_drives_a_real_agent() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let good = TestUser::with(
        &format!("drive{tag}"),
        &format!("drive{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Dr"),
        "Driver Test",
    );
    admin.create_user(&good).await?;
    let mut wrong = good.clone();
    wrong.password = recorded_secret("Dw");

    let dir = fresh_dir("agent-drive")?;
    let mut t = PtaSetup::new(&dir, &corp)
        .without_app()
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let mut agent = t.register_agent(&[ForestEntry::for_forest(&corp)])?;
    t.cloud.stop();
    let driver = AgentDriver::bind(&t.cloud.data_dir).await?;
    let registered = driver.redirect(&agent.state_dir)?;

    // The right password, then the wrong one, in turn.
    let frames = seal_requests(
        &registered.public_key,
        registered.tenant_id,
        registered.agent_id,
        &[good.clone(), wrong],
        6,
        Duration::from_secs(60),
        true,
    )?;
    agent.run()?;
    let mut link = driver
        .accept(registered.tenant_id, registered.agent_id)
        .await?;
    let mut next = 0;
    let d = link
        .drive(&frames, &mut next, 2, Duration::from_secs(30))
        .await?;
    ensure!(next == 6, "sent {next} of 6 requests");
    ensure!(
        d.ok == 3 && d.errors == 3,
        "expected 3 successes and 3 refusals, got {} and {} ({:?})",
        d.ok,
        d.errors,
        d.first_error
    );
    let first = d.first_error.unwrap_or_default();
    ensure!(
        first.contains("LogonFailure"),
        "a wrong password gave {first}, not 1326"
    );
    ensure!(d.latencies.len() == 3);

    // The same sealed request again: the agent's replay cache refuses it, without a bind.
    let again = [SealedFrame {
        id: frames[0].id,
        text: frames[0].text.clone(),
        answer_key: frames[0].answer_key.clone(),
    }];
    let mut next = 0;
    let r = link
        .drive(&again, &mut next, 1, Duration::from_secs(30))
        .await?;
    ensure!(
        r.ok == 0 && r.errors == 1,
        "a replay gave {} successes",
        r.ok
    );
    let replayed = r.first_error.unwrap_or_default();
    ensure!(replayed.contains("Replayed"), "a replay gave {replayed}");

    // The driver checks the MAC: checked with another request's key, a success is refused.
    let mut fresh = seal_requests(
        &registered.public_key,
        registered.tenant_id,
        registered.agent_id,
        std::slice::from_ref(&good),
        2,
        Duration::from_secs(60),
        false,
    )?;
    let other = fresh.pop().ok_or_else(|| anyhow::anyhow!("no frame"))?;
    fresh[0].answer_key = other.answer_key;
    let mut next = 0;
    let r = link
        .drive(&fresh, &mut next, 1, Duration::from_secs(30))
        .await?;
    ensure!(
        r.ok == 0 && r.errors == 1,
        "a mismatched MAC gave {} successes",
        r.ok
    );
    let refused = r.first_error.unwrap_or_default();
    ensure!(
        refused.contains("answer refused"),
        "a mismatched MAC gave {refused}"
    );
    drop(link);
    drop(agent);
    Ok(())
}
