//! The second-factor steps of a browser sign-in, in process: enrolment at sign-in (a wrong
//! code, the right one, the recovery codes, completion), the code page of an enrolled user
//! (a code used once, a recovery code used once), steps taken out of order, and the password
//! grant's refusal when a second factor is required.

use zeroize::Zeroizing;

use super::totp;
use crate::clock::unix_now;
use crate::in_process::{ad, Answer, Bed, DOMAIN, RIGHT};
use crate::model::mfa_policy::Policy;

/// The username and password pages for `name`: the page that follows the password.
async fn password_step(bed: &Bed, name: &str) -> anyhow::Result<Answer> {
    bed.password_pages(&bed.authorize().await?, name).await
}

/// The secret the enrolment page shows (base32), as bytes.
fn shown_secret(page: &Answer) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let start = page
        .body
        .find("id=\"secret\">")
        .ok_or_else(|| anyhow::anyhow!("no secret on the page: {}", page.body))?;
    let rest = &page.body[start + "id=\"secret\">".len()..];
    let text: String = rest
        .chars()
        .take_while(|c| *c != '<')
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = totp_rs::Secret::Encoded(text)
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("the shown secret is not base32: {e:?}"))?;
    Ok(Zeroizing::new(bytes))
}

fn code_now(secret: &[u8]) -> anyhow::Result<Zeroizing<String>> {
    totp::code_for_step(secret, totp::step_of(unix_now()))
        .ok_or_else(|| anyhow::anyhow!("no code for this step"))
}

/// The recovery codes of the recovery page.
fn recovery_codes(page: &Answer) -> Vec<String> {
    let Some(start) = page.body.find("id=\"recovery-codes\">") else {
        return Vec::new();
    };
    page.body[start..]
        .split("<li>")
        .skip(1)
        .filter_map(|s| s.split("</li>").next().map(str::to_string))
        .collect()
}

/// Posts the sign-in's second-factor form `path` with `code`.
async fn post_code(bed: &Bed, page: &Answer, path: &str, code: &str) -> anyhow::Result<Answer> {
    bed.post(
        &format!("/contoso/login/{path}"),
        &[
            ("req", &page.hidden("req")),
            ("csrf", &page.hidden("csrf")),
            ("code", code),
        ],
        "",
    )
    .await
}

#[tokio::test]
async fn enrolment_at_sign_in_then_codes_each_used_once() -> anyhow::Result<()> {
    let mut bed = Bed::new(ad).await?;
    bed.settings(|s| s.mfa = Policy::Required).await?;

    // First sign-in: the enrolment page, a wrong code, the right one, the recovery codes.
    let enrol = password_step(&bed, "mia").await?;
    assert_eq!(enrol.status, 200, "{}", enrol.body);
    let secret = shown_secret(&enrol)?;
    let wrong = post_code(&bed, &enrol, "mfa/enrol", "000000").await?;
    assert!(wrong.status.is_client_error(), "{}", wrong.status);
    assert!(wrong.body.contains("AADSTS500121"), "{}", wrong.body);
    // Completion before the code is proved: refused.
    let early = post_code(&bed, &enrol, "mfa/continue", "").await?;
    assert_eq!(early.status, 403, "{}", early.body);
    let good = code_now(&secret)?;
    let codes_page = post_code(&bed, &enrol, "mfa/enrol", &good).await?;
    assert_eq!(codes_page.status, 200, "{}", codes_page.body);
    let recovery = recovery_codes(&codes_page);
    assert!(recovery.len() >= 8, "{recovery:?}");
    // The same enrolment cannot be confirmed twice.
    let again = post_code(&bed, &enrol, "mfa/enrol", &good).await?;
    assert_eq!(again.status, 403, "{}", again.body);
    let done = post_code(&bed, &codes_page, "mfa/continue", "").await?;
    assert!(
        done.location().contains("code="),
        "{} {}",
        done.status,
        done.body
    );
    // Completing twice does not give a second code.
    let twice = post_code(&bed, &codes_page, "mfa/continue", "").await?;
    assert!(!twice.location().contains("code="), "{}", twice.location());

    // Second sign-in: the code page. The code just used (same 30 s step) is refused; a
    // recovery code works, once.
    let ask = password_step(&bed, "mia").await?;
    assert_eq!(ask.status, 200, "{}", ask.body);
    assert!(ask.body.contains("name=\"code\""), "{}", ask.body);
    let reused = post_code(&bed, &ask, "mfa", &good).await?;
    assert!(
        !reused.location().contains("code="),
        "a TOTP code worked twice"
    );
    let by_recovery = post_code(&bed, &ask, "mfa", &recovery[0]).await?;
    assert!(
        by_recovery.location().contains("code="),
        "{} {}",
        by_recovery.status,
        by_recovery.body
    );
    let ask = password_step(&bed, "mia").await?;
    let spent = post_code(&bed, &ask, "mfa", &recovery[0]).await?;
    assert!(
        !spent.location().contains("code="),
        "a recovery code worked twice"
    );
    let other = post_code(&bed, &ask, "mfa", &recovery[1]).await?;
    assert!(
        other.location().contains("code="),
        "{} {}",
        other.status,
        other.body
    );

    // The password grant cannot ask for the second factor: 50076.
    let upn = format!("mia@{DOMAIN}");
    let grant = bed
        .post(
            "/contoso/oauth2/v2.0/token",
            &[
                ("grant_type", "password"),
                ("client_id", bed.client_id.as_str()),
                ("username", upn.as_str()),
                ("password", RIGHT),
                ("scope", "openid"),
            ],
            "",
        )
        .await?;
    let v: serde_json::Value = serde_json::from_str(&grant.body)?;
    assert_eq!(v["error_codes"][0], 50076, "{v}");
    Ok(())
}

#[tokio::test]
async fn a_challenge_belongs_to_its_sign_in() -> anyhow::Result<()> {
    let mut bed = Bed::new(ad).await?;
    bed.settings(|s| s.mfa = Policy::Required).await?;
    let enrol = password_step(&bed, "nia").await?;
    let secret = shown_secret(&enrol)?;
    let good = code_now(&secret)?;
    // Another sign-in's request id with this one's CSRF token (or the reverse): refused.
    let other = bed.authorize().await?;
    for (req, csrf) in [
        (other.hidden("req"), enrol.hidden("csrf")),
        (enrol.hidden("req"), other.hidden("csrf")),
        (enrol.hidden("req"), String::new()),
    ] {
        let a = bed
            .post(
                "/contoso/login/mfa/enrol",
                &[("req", &req), ("csrf", &csrf), ("code", &good)],
                "",
            )
            .await?;
        assert_eq!(a.status, 403, "{}", a.body);
    }
    // A request that never passed the password step has no challenge.
    let a = bed
        .post(
            "/contoso/login/mfa",
            &[
                ("req", &other.hidden("req")),
                ("csrf", &other.hidden("csrf")),
                ("code", &good),
            ],
            "",
        )
        .await?;
    assert_eq!(a.status, 403, "{}", a.body);
    // The real pair still enrols.
    let ok = post_code(&bed, &enrol, "mfa/enrol", &good).await?;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(!recovery_codes(&ok).is_empty());
    Ok(())
}
