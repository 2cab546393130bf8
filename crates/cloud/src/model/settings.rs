//! Tenant settings: one typed struct, one table of keys (name, range, default, help), and
//! one parser, so the API, the CLI and the portal validate a value the same way and say the
//! same thing when it is wrong.

use serde::Serialize;

/// Which attribute users type as their sign-in name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SignInAttribute {
    /// The on-premises userPrincipalName (the default).
    #[serde(rename = "userPrincipalName")]
    UserPrincipalName,
    /// The mail attribute (alternate login ID).
    #[serde(rename = "mail")]
    Mail,
}

impl SignInAttribute {
    /// The setting's value as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SignInAttribute::UserPrincipalName => "userPrincipalName",
            SignInAttribute::Mail => "mail",
        }
    }
}

/// Whether the tenant's agents update themselves (`agent_updates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentUpdates {
    /// The cloud offers the newest release to agents that ask (the default).
    Auto,
    /// The cloud offers none.
    Off,
}

impl AgentUpdates {
    /// The setting's value as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentUpdates::Auto => "auto",
            AgentUpdates::Off => "off",
        }
    }
}

/// A tenant's settings, with their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// How long the cloud waits for an agent's answer before AADSTS80002.
    pub request_deadline_ms: u64,
    /// Failed sign-ins before the cloud locks a user (smart lockout).
    pub lockout_threshold: u32,
    /// How long the first cloud lockout lasts.
    pub lockout_duration_seconds: u64,
    /// Whether managed-domain users must have been synced to sign in.
    pub sync_required: bool,
    /// What users type as their sign-in name.
    pub sign_in_attribute: SignInAttribute,
    /// Whether password changes and resets are written back to AD.
    pub writeback: bool,
    /// How long the sign-in log keeps a line.
    pub signin_retention_days: u32,
    /// How long the audit log keeps an entry.
    pub audit_retention_days: u32,
    /// Who is asked for a second factor (a user's own policy takes precedence).
    pub mfa: crate::model::mfa_policy::Policy,
    /// Whether the tenant's agents are offered releases.
    pub agent_updates: AgentUpdates,
    /// The organization's name on the sign-in pages (empty: the tenant's name).
    pub branding_name: String,
    /// The colour of the sign-in pages' buttons, `#rrggbb` (empty: the default blue).
    pub branding_accent_color: String,
    /// A sentence under the sign-in forms (empty: none).
    pub branding_sign_in_text: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            request_deadline_ms: 10_000,
            lockout_threshold: 10,
            lockout_duration_seconds: 60,
            sync_required: false,
            sign_in_attribute: SignInAttribute::UserPrincipalName,
            writeback: false,
            signin_retention_days: 30,
            audit_retention_days: 365,
            mfa: crate::model::mfa_policy::Policy::Optional,
            agent_updates: AgentUpdates::Auto,
            branding_name: String::new(),
            branding_accent_color: String::new(),
            branding_sign_in_text: String::new(),
        }
    }
}

/// One settable key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The key as typed in `settings set KEY VALUE`.
    pub name: &'static str,
    /// What it does and what it accepts.
    pub help: &'static str,
}

/// Every key, in the order they are listed.
pub const KEYS: &[Key] = &[
    Key {
        name: "request_deadline_ms",
        help: "milliseconds the cloud waits for an agent's answer before AADSTS80002 (1000 to 60000, default 10000)",
    },
    Key {
        name: "lockout_threshold",
        help: "failed sign-ins before smart lockout locks the user in the cloud (1 to 100, default 10)",
    },
    Key {
        name: "lockout_duration_seconds",
        help: "seconds the first smart lockout lasts; repeats last longer (10 to 86400, default 60)",
    },
    Key {
        name: "sync_required",
        help: "true: managed-domain users must have been synced to sign in (true or false, default false; turned on by the tenant's first successful directory sync)",
    },
    Key {
        name: "sign_in_attribute",
        help: "what users type to sign in: userPrincipalName or mail (a synced user's mail, resolved to their on-premises UPN; default userPrincipalName)",
    },
    Key {
        name: "writeback",
        help: "true: password changes and resets made in the cloud are written back to AD (true or false, default false)",
    },
    Key {
        name: "signin_retention_days",
        help: "days the sign-in log keeps a line (1 to 365, default 30)",
    },
    Key {
        name: "audit_retention_days",
        help: "days the audit log keeps an administrative change (30 to 3650, default 365)",
    },
    Key {
        name: "mfa",
        help: "multi-factor authentication (TOTP): off, optional (users who enrolled are asked for a code; others may enrol at /TENANT/mfa/setup) or required (everyone; users enrol at their next sign-in); a user's own policy (`user mfa`) takes precedence (default optional)",
    },
    Key {
        name: "agent_updates",
        help: "signed auto-update of the tenant's agents: auto (agents that ask are offered the newest release added with `agents release add`; each verifies it with its pinned publisher key) or off (none is offered) (default auto)",
    },
    Key {
        name: "branding_name",
        help: "the organization's name shown on the sign-in pages, at most 64 characters (default empty: the tenant's name)",
    },
    Key {
        name: "branding_accent_color",
        help: "the colour of the sign-in pages' buttons as #rrggbb, dark enough for white text (a contrast of at least 4.5:1) (default empty: blue)",
    },
    Key {
        name: "branding_sign_in_text",
        help: "a sentence shown under the sign-in forms, at most 500 characters (default empty: none)",
    },
];

/// Why a setting was refused. The text is shown to the administrator as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingError {
    /// The key is not one of [`KEYS`].
    #[error("'{0}' is not a setting. Settings: {1}.")]
    UnknownKey(String, String),
    /// The value does not parse or is out of range.
    #[error("'{value}' is not a valid value for {key}: it takes {help}.")]
    BadValue {
        key: &'static str,
        value: String,
        help: &'static str,
    },
}

fn int<T: std::str::FromStr + PartialOrd>(
    key: &Key,
    value: &str,
    lo: T,
    hi: T,
) -> Result<T, SettingError> {
    value
        .trim()
        .parse::<T>()
        .ok()
        .filter(|v| *v >= lo && *v <= hi)
        .ok_or_else(|| bad(key, value))
}

fn boolean(key: &Key, value: &str) -> Result<bool, SettingError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(bad(key, value)),
    }
}

/// Text of at most `max` characters without control characters, trimmed.
fn plain_text(key: &Key, value: &str, max: usize) -> Result<String, SettingError> {
    let v = value.trim();
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(bad(key, value));
    }
    Ok(v.to_string())
}

/// `#rrggbb` (lower-cased) whose contrast with white text is at least 4.5:1 (WCAG AA), or
/// empty.
fn accent(key: &Key, value: &str) -> Result<String, SettingError> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() {
        return Ok(v);
    }
    let rgb = v
        .strip_prefix('#')
        .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| bad(key, value))?;
    if contrast_with_white(rgb) < 4.5 {
        return Err(bad(key, value));
    }
    Ok(v)
}

/// The WCAG contrast ratio of white text on the colour `rgb` (0xRRGGBB).
pub fn contrast_with_white(rgb: u32) -> f64 {
    let channel = |c: u32| {
        let c = f64::from(c & 0xff) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(rgb >> 16) + 0.7152 * channel(rgb >> 8) + 0.0722 * channel(rgb);
    1.05 / (l + 0.05)
}

fn bad(key: &Key, value: &str) -> SettingError {
    SettingError::BadValue {
        key: key.name,
        value: value.chars().take(64).collect(),
        help: key.help,
    }
}

fn key(name: &str) -> Result<&'static Key, SettingError> {
    KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
        SettingError::UnknownKey(
            name.chars().take(64).collect(),
            KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
        )
    })
}

impl Settings {
    /// Sets `name` to `value` (as typed), or says why not; `self` is unchanged on error.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SettingError> {
        let k = key(name)?;
        match k.name {
            "request_deadline_ms" => self.request_deadline_ms = int(k, value, 1_000, 60_000)?,
            "lockout_threshold" => self.lockout_threshold = int(k, value, 1, 100)?,
            "lockout_duration_seconds" => {
                self.lockout_duration_seconds = int(k, value, 10, 86_400)?
            }
            "sync_required" => self.sync_required = boolean(k, value)?,
            "sign_in_attribute" => {
                self.sign_in_attribute = match value.trim() {
                    v if v.eq_ignore_ascii_case("userPrincipalName") || v == "upn" => {
                        SignInAttribute::UserPrincipalName
                    }
                    v if v.eq_ignore_ascii_case("mail") => SignInAttribute::Mail,
                    _ => return Err(bad(k, value)),
                }
            }
            "writeback" => self.writeback = boolean(k, value)?,
            "signin_retention_days" => self.signin_retention_days = int(k, value, 1, 365)?,
            "audit_retention_days" => self.audit_retention_days = int(k, value, 30, 3650)?,
            "mfa" => {
                self.mfa =
                    crate::model::mfa_policy::Policy::parse(value).ok_or_else(|| bad(k, value))?
            }
            "agent_updates" => {
                self.agent_updates = match value.trim().to_ascii_lowercase().as_str() {
                    "auto" | "on" => AgentUpdates::Auto,
                    "off" => AgentUpdates::Off,
                    _ => return Err(bad(k, value)),
                }
            }
            "branding_name" => self.branding_name = plain_text(k, value, 64)?,
            "branding_accent_color" => self.branding_accent_color = accent(k, value)?,
            "branding_sign_in_text" => self.branding_sign_in_text = plain_text(k, value, 500)?,
            _ => return Err(bad(k, value)),
        }
        Ok(())
    }

    /// The value of `name` as stored and shown.
    pub fn get(&self, name: &str) -> Result<String, SettingError> {
        let k = key(name)?;
        Ok(match k.name {
            "request_deadline_ms" => self.request_deadline_ms.to_string(),
            "lockout_threshold" => self.lockout_threshold.to_string(),
            "lockout_duration_seconds" => self.lockout_duration_seconds.to_string(),
            "sync_required" => self.sync_required.to_string(),
            "sign_in_attribute" => self.sign_in_attribute.as_str().to_string(),
            "writeback" => self.writeback.to_string(),
            "signin_retention_days" => self.signin_retention_days.to_string(),
            "audit_retention_days" => self.audit_retention_days.to_string(),
            "mfa" => self.mfa.as_str().to_string(),
            "agent_updates" => self.agent_updates.as_str().to_string(),
            "branding_name" => self.branding_name.clone(),
            "branding_accent_color" => self.branding_accent_color.clone(),
            "branding_sign_in_text" => self.branding_sign_in_text.clone(),
            _ => return Err(bad(k, "")),
        })
    }

    /// Every key with its value, in [`KEYS`] order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        KEYS.iter()
            .filter_map(|k| self.get(k.name).ok().map(|v| (k.name, v)))
            .collect()
    }

    /// Builds settings from stored pairs; a stored value that no longer validates keeps its
    /// default (and is reported by the caller through `skipped`).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        skipped: &mut Vec<SettingError>,
    ) -> Settings {
        let mut s = Settings::default();
        for (k, v) in pairs {
            if let Err(e) = s.set(k, v) {
                skipped.push(e);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branding_values_are_checked() {
        let mut s = Settings::default();
        assert!(s.set("branding_accent_color", "#0B5CAD").is_ok());
        assert_eq!(s.branding_accent_color, "#0b5cad");
        for bad in ["#ffff00", "#fff", "blue", "#12345g", "#0b5cad;x"] {
            assert!(s.set("branding_accent_color", bad).is_err(), "{bad}");
        }
        assert_eq!(
            s.branding_accent_color, "#0b5cad",
            "a refused value changes nothing"
        );
        assert!(s.set("branding_name", &"x".repeat(65)).is_err());
        assert!(s.set("branding_name", "Contoso\u{7}").is_err());
        assert!(s.set("branding_name", " Contoso Ltd ").is_ok());
        assert_eq!(s.branding_name, "Contoso Ltd");
        assert!(s.set("branding_sign_in_text", &"y".repeat(501)).is_err());
        assert!((contrast_with_white(0x000000) - 21.0).abs() < 0.01);
        assert!((contrast_with_white(0xffffff) - 1.0).abs() < 0.01);
    }

    #[test]
    fn every_key_round_trips() {
        let d = Settings::default();
        for (k, v) in d.pairs() {
            let mut s = Settings::default();
            assert!(s.set(k, &v).is_ok(), "{k}");
            assert_eq!(s, d, "{k}");
        }
        assert_eq!(d.pairs().len(), KEYS.len());
    }

    #[test]
    fn values_are_validated() {
        let mut s = Settings::default();
        assert!(s.set("lockout_threshold", "0").is_err());
        assert!(s.set("lockout_threshold", "ten").is_err());
        assert!(s.set("request_deadline_ms", "999").is_err());
        assert!(s.set("writeback", "maybe").is_err());
        assert!(s.set("sign_in_attribute", "sAMAccountName").is_err());
        assert!(s.set("mfa", "sometimes").is_err());
        assert_eq!(s, Settings::default(), "a refused value changes nothing");
        let e = s.set("lockout", "3").err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("lockout_threshold")));
        s.set("sign_in_attribute", "MAIL").ok();
        assert_eq!(s.sign_in_attribute, SignInAttribute::Mail);
        s.set("lockout_threshold", " 3 ").ok();
        assert_eq!(s.lockout_threshold, 3);
        s.set("mfa", "Required").ok();
        assert_eq!(s.mfa, crate::model::mfa_policy::Policy::Required);
    }

    #[test]
    fn agent_updates_are_auto_or_off() {
        let mut s = Settings::default();
        assert_eq!(s.agent_updates, AgentUpdates::Auto);
        assert_eq!(s.get("agent_updates").ok().as_deref(), Some("auto"));
        assert!(s.set("agent_updates", " OFF ").is_ok());
        assert_eq!(s.agent_updates, AgentUpdates::Off);
        assert_eq!(s.get("agent_updates").ok().as_deref(), Some("off"));
        let e = s
            .set("agent_updates", "sometimes")
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("agent_updates")
                && e.contains("auto")
                && e.contains("off")),
            "{e:?}"
        );
        assert_eq!(
            s.agent_updates,
            AgentUpdates::Off,
            "a refused value changes nothing"
        );
        assert!(s.set("agent_updates", "auto").is_ok());
        assert_eq!(s.agent_updates, AgentUpdates::Auto);
    }
}
