//! The portal shows as text what others chose: a name typed at a sign-in (the log keeps it as
//! typed), an app's name and redirect URIs, a directory user's name, a synced group's names,
//! the filters and values a browser sends, and the error the sign-in service answers the
//! callback with. Each value carries `<script>`, `"`, `'` and `&`, and must come out
//! escaped.

use super::tests::portal_session;
use crate::admin_api::ops::GLOBAL_ADMIN;
use crate::clock::unix_now;
use crate::in_process::{ad, Bed, DOMAIN, HOSTILE, HOSTILE_SHOWN, REDIRECT};
use crate::store::App;

/// [`HOSTILE`] as `application/x-www-form-urlencoded` writes it.
fn encoded() -> String {
    url::form_urlencoded::byte_serialize(HOSTILE.as_bytes()).collect()
}

#[tokio::test]
async fn names_typed_at_sign_in_and_app_names_are_escaped() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    // A failed sign-in: the log keeps the name as it was typed.
    let first = bed.authorize().await?;
    let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
    let name = format!("{HOSTILE}@{DOMAIN}");
    for (path, field, value) in [
        ("/contoso/login", "username", name.as_str()),
        ("/contoso/login/password", "password", "wrong"),
    ] {
        bed.post(path, &[("req", &req), ("csrf", &csrf), (field, value)], "")
            .await?;
    }
    bed.state
        .store
        .add_app(
            &App {
                client_id: uuid::Uuid::new_v4().to_string(),
                tenant_id: bed.tenant.id,
                name: HOSTILE.into(),
                public: true,
                redirect_uris: vec![format!("https://x.example.test/{HOSTILE}"), REDIRECT.into()],
                secret_hash: None,
                groups_claim: false,
                ..Default::default()
            },
            unix_now(),
        )
        .await?;
    let ga = portal_session(&bed, "gail", GLOBAL_ADMIN).await?;

    let log = bed.get("/contoso/portal/signins", &ga).await?;
    assert_eq!(log.status, 200, "{}", log.body);
    log.shows_escaped(&format!("<td>{HOSTILE_SHOWN}@{DOMAIN}</td>"))?;
    let apps = bed.get("/contoso/portal/apps", &ga).await?;
    assert_eq!(apps.status, 200, "{}", apps.body);
    apps.shows_escaped(&format!("<td>{HOSTILE_SHOWN}</td>"))?;
    apps.shows_escaped(&format!(
        "\">https://x.example.test/{HOSTILE_SHOWN}\n{REDIRECT}</textarea>"
    ))?;
    Ok(())
}

#[tokio::test]
async fn what_a_browser_sends_comes_back_escaped() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let ga = portal_session(&bed, "gail", GLOBAL_ADMIN).await?;
    let e = encoded();

    // The sign-in log's filters: in their fields and in the CSV link.
    let log = bed
        .get(
            &format!("/contoso/portal/signins?user={e}&result={e}&correlation={e}"),
            &ga,
        )
        .await?;
    assert_eq!(log.status, 200, "{}", log.body);
    log.shows_escaped(&format!("id=\"user\" value=\"{HOSTILE_SHOWN}\""))?;
    log.shows_escaped(&format!("id=\"correlation\" value=\"{HOSTILE_SHOWN}\""))?;
    log.shows_escaped(&format!(
        "href=\"/contoso/portal/signins.csv?user={e}&amp;result={e}&amp;aadsts=&amp;app=&amp;agent=&amp;ip=&amp;correlation={e}&amp;since=24h"
    ))?;

    // The users page's search.
    let users = bed
        .get(&format!("/contoso/portal/users?q={e}"), &ga)
        .await?;
    assert_eq!(users.status, 200, "{}", users.body);
    users.shows_escaped(&format!("id=\"q\" value=\"{HOSTILE_SHOWN}\""))?;

    // A refused setting: the typed value back in its field.
    let csrf = bed
        .get("/contoso/portal/settings", &ga)
        .await?
        .hidden("csrf");
    let bad = bed
        .post(
            "/contoso/portal/settings",
            &[
                ("csrf", &csrf),
                ("key", "lockout_threshold"),
                ("value", HOSTILE),
            ],
            &ga,
        )
        .await?;
    assert_eq!(bad.status, 400, "{}", bad.body);
    bad.shows_escaped(&format!(
        "id=\"input-lockout_threshold\" value=\"{HOSTILE_SHOWN}\""
    ))?;

    // The callback's error, as the sign-in service (or anyone with a link) sends it.
    let callback = bed
        .get(
            &format!("/contoso/portal/callback?error={e}&error_description={e}"),
            "",
        )
        .await?;
    assert_eq!(callback.status, 400, "{}", callback.body);
    callback.shows_escaped(&format!(
        "id=\"error\">{HOSTILE_SHOWN}: {HOSTILE_SHOWN}</p>"
    ))?;
    Ok(())
}

#[tokio::test]
async fn a_directory_users_name_is_escaped_in_the_header_and_the_pages() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let ga = portal_session(&bed, "gail", GLOBAL_ADMIN).await?;
    // The bed's directory accepts any name of its domain: this one signs in, without a role.
    let own = portal_session(&bed, HOSTILE, "none").await?;
    let upn = format!("{HOSTILE_SHOWN}@{DOMAIN}");

    let denied = bed.get("/contoso/portal/", &own).await?;
    assert_eq!(denied.status, 403, "{}", denied.body);
    denied.shows_escaped(&format!("<span id=\"upn\">{upn}</span>"))?;
    denied.shows_escaped(&format!("id=\"error\">{upn} has the role none;"))?;

    let users = bed.get("/contoso/portal/users", &ga).await?;
    assert_eq!(users.status, 200, "{}", users.body);
    users.shows_escaped(&format!("\">{upn}</a></td>"))?;
    Ok(())
}

#[tokio::test]
async fn a_synced_groups_names_are_escaped() -> anyhow::Result<()> {
    use passthru_proto::sync::{SyncBatch, SyncGroup, SyncObject};
    let bed = Bed::new(ad).await?;
    // What an AD administrator (or anyone who may name a group there) chose.
    let group = SyncGroup {
        object_guid: uuid::Uuid::new_v4(),
        consistency_guid: None,
        dn: format!("CN={HOSTILE},DC=corp,DC=example,DC=test"),
        sam_account_name: Some(HOSTILE.into()),
        display_name: Some(HOSTILE.into()),
        mail: None,
        members: Vec::new(),
        usn_changed: 1,
        when_changed: None,
    };
    let batch = SyncBatch {
        run_id: uuid::Uuid::new_v4(),
        objects: vec![SyncObject::Group(group)],
        present: Vec::new(),
        done: 1,
        estimated_total: None,
    };
    bed.state
        .store
        .apply_sync_batch(bed.tenant.id, DOMAIN, &batch, unix_now())
        .await?;
    let ga = portal_session(&bed, "gail", GLOBAL_ADMIN).await?;
    let sync = bed.get("/contoso/portal/sync", &ga).await?;
    assert_eq!(sync.status, 200, "{}", sync.body);
    sync.shows_escaped(&format!("<td>{HOSTILE_SHOWN}</td>"))?;
    sync.shows_escaped(&format!(
        "<td>CN={HOSTILE_SHOWN},DC=corp,DC=example,DC=test</td>"
    ))?;
    Ok(())
}
