//! The shapes on the wire: what is optional is left out, not sent as `null`, where the API
//! always left it out; secrets never reach `Debug`.

use serde_json::json;

use super::*;

#[test]
fn optional_parts_are_left_out_and_required_ones_kept() -> Result<(), serde_json::Error> {
    let d = Domain {
        name: "corp.example".into(),
        verified: true,
        kind: "managed".into(),
        verification: None,
        issuer: None,
        client_id: None,
        users: None,
    };
    assert_eq!(
        serde_json::to_value(&d)?,
        json!({ "name": "corp.example", "verified": true, "kind": "managed" })
    );
    let body: NewDomain = serde_json::from_value(json!({ "name": "corp.example" }))?;
    assert!(body.federated.is_none());
    assert_eq!(
        serde_json::to_value(&body)?,
        json!({ "name": "corp.example" })
    );
    let reset: ResetPassword = serde_json::from_value(json!({ "password": "x" }))?;
    assert!(!reset.must_change);
    assert!(serde_json::from_value::<ConvertDomain>(json!({})).is_err());
    Ok(())
}

#[test]
fn secrets_stay_out_of_debug() -> Result<(), serde_json::Error> {
    let u: NewUser =
        serde_json::from_value(json!({ "upn": "a@corp.example", "password": "hunter2-secret" }))?;
    assert!(!format!("{u:?}").contains("hunter2"));
    let f: FederatedIdp = serde_json::from_value(
        json!({ "issuer": "https://idp.example", "client_id": "c", "client_secret": "s3cr3t-value" }),
    )?;
    assert!(!format!("{f:?}").contains("s3cr3t"));
    Ok(())
}

#[test]
fn issuers() {
    assert!(valid_issuer("https://login.example.com/tid/v2.0").is_ok());
    assert!(valid_issuer("http://login.example.com/").is_err());
    assert!(valid_issuer("https://login.example.com/?x=1").is_err());
    assert!(valid_issuer("https://u@login.example.com/").is_err());
    assert!(valid_issuer("https://login.example.com/a b").is_err());
}

#[test]
fn a_setting_value_is_text_a_number_or_a_boolean() -> Result<(), serde_json::Error> {
    let text = |v: serde_json::Value| {
        serde_json::from_value::<SetSetting>(json!({ "value": v })).map(|s| s.value.text())
    };
    assert_eq!(text(json!("mail"))?, "mail");
    assert_eq!(text(json!(5))?, "5");
    assert_eq!(text(json!(2.5))?, "2.5");
    assert_eq!(text(json!(true))?, "true");
    assert!(text(json!(null)).is_err() && text(json!([1])).is_err());
    assert_eq!(
        serde_json::to_value(SetSetting {
            value: SettingValue::Text("5".into())
        })?,
        json!({ "value": "5" })
    );
    Ok(())
}
