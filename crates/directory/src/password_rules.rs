//! Which password rule refused a new password. AD answers every policy refusal with the same
//! "constraint violation, 0000052D"; to tell the user what to do, the agent reads the policy
//! in force for the user (the domain's, or a fine-grained password policy) and checks the
//! rules itself, in the order AD applies them. Samba also names the rule in its message,
//! which breaks a tie the policy cannot (a password in the history).

use passthru_proto::PasswordRefusal;

/// Seconds between 1601-01-01 (the FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: i64 = 11_644_473_600;
/// FILETIME ticks (100 ns) per second.
const TICKS_PER_SECOND: i64 = 10_000_000;

/// The password policy in force for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasswordPolicy {
    /// Minimum length, in characters.
    pub min_length: u32,
    /// Whether the complexity rule applies.
    pub complexity: bool,
    /// Minimum age before the user may change the password again, seconds.
    pub min_age_seconds: u64,
    /// How many previous passwords may not be reused.
    pub history_length: u32,
}

impl PasswordPolicy {
    /// Reads the policy from the domain object's attributes (`minPwdLength`,
    /// `pwdProperties`, `minPwdAge`, `pwdHistoryLength`), each as its text value.
    pub fn from_domain(get: impl Fn(&str) -> Option<String>) -> PasswordPolicy {
        let int = |name: &str| get(name).and_then(|v| v.trim().parse::<i64>().ok());
        PasswordPolicy {
            min_length: int("minPwdLength").map_or(0, clamp_u32),
            // DOMAIN_PASSWORD_COMPLEX is bit 0 of pwdProperties.
            complexity: int("pwdProperties").is_some_and(|p| p & 1 == 1),
            min_age_seconds: int("minPwdAge").map_or(0, interval_seconds),
            history_length: int("pwdHistoryLength").map_or(0, clamp_u32),
        }
    }

    /// Reads a fine-grained password policy object (`msDS-MinimumPasswordLength`,
    /// `msDS-PasswordComplexityEnabled`, `msDS-MinimumPasswordAge`,
    /// `msDS-PasswordHistoryLength`).
    pub fn from_pso(get: impl Fn(&str) -> Option<String>) -> PasswordPolicy {
        let int = |name: &str| get(name).and_then(|v| v.trim().parse::<i64>().ok());
        PasswordPolicy {
            min_length: int("msDS-MinimumPasswordLength").map_or(0, clamp_u32),
            complexity: get("msDS-PasswordComplexityEnabled")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("TRUE")),
            min_age_seconds: int("msDS-MinimumPasswordAge").map_or(0, interval_seconds),
            history_length: int("msDS-PasswordHistoryLength").map_or(0, clamp_u32),
        }
    }
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// An AD interval (negative 100-ns ticks, as `minPwdAge` holds it) in seconds.
fn interval_seconds(ticks: i64) -> u64 {
    u64::try_from(ticks.saturating_abs() / TICKS_PER_SECOND).unwrap_or(0)
}

/// `pwdLastSet` (FILETIME text) as Unix seconds; `None` for 0 (must change) or unreadable.
pub fn pwd_last_set(text: &str) -> Option<i64> {
    let ticks = text.trim().parse::<i64>().ok().filter(|t| *t > 0)?;
    Some(ticks / TICKS_PER_SECOND - FILETIME_UNIX_OFFSET)
}

/// What is known about the refused password and its user.
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    /// The new password (only its length and character kinds are looked at).
    pub new_password: &'a str,
    /// The user's sAMAccountName.
    pub sam_account_name: Option<&'a str>,
    /// The user's displayName.
    pub display_name: Option<&'a str>,
    /// When the password was last set, Unix seconds.
    pub last_set: Option<i64>,
    /// Now, Unix seconds.
    pub now: i64,
    /// A change by the user (subject to the minimum age), not a reset.
    pub is_change: bool,
    /// The DC's diagnostic text.
    pub dc_text: &'a str,
}

/// The rule that refused the password.
pub fn diagnose(policy: &PasswordPolicy, r: &Refused<'_>) -> PasswordRefusal {
    let text = r.dc_text.to_ascii_lowercase();
    if r.new_password.chars().count() < policy.min_length as usize || text.contains("too short") {
        return PasswordRefusal::TooShort {
            min_length: policy.min_length,
        };
    }
    if (policy.complexity && !is_complex(r.new_password, r.sam_account_name, r.display_name))
        || text.contains("complexity")
    {
        return PasswordRefusal::NotComplex;
    }
    let young = r.is_change
        && policy.min_age_seconds > 0
        && r.last_set.is_some_and(|t| {
            r.now.saturating_sub(t) < i64::try_from(policy.min_age_seconds).unwrap_or(i64::MAX)
        });
    if young || text.contains("too young") {
        return PasswordRefusal::TooYoung {
            min_age_seconds: policy.min_age_seconds,
        };
    }
    if policy.history_length > 0 || text.contains("history") {
        return PasswordRefusal::InHistory {
            history_length: policy.history_length,
        };
    }
    PasswordRefusal::Other
}

/// AD's complexity rule: the password contains neither the account name nor any part of
/// the full name of three characters or more (case-insensitively), and has characters of
/// at least three of five kinds: upper case, lower case, digits, symbols, and letters that
/// are neither upper nor lower case.
pub fn is_complex(password: &str, sam: Option<&str>, display_name: Option<&str>) -> bool {
    let lower = password.to_lowercase();
    if let Some(sam) = sam.filter(|s| s.chars().count() >= 3) {
        if lower.contains(&sam.to_lowercase()) {
            return false;
        }
    }
    if let Some(name) = display_name {
        let delimiters = [',', '.', '-', '_', '#', '\t', ' '];
        for token in name.split(|c| delimiters.contains(&c)) {
            if token.chars().count() >= 3 && lower.contains(&token.to_lowercase()) {
                return false;
            }
        }
    }
    let mut kinds = [false; 5];
    for c in password.chars() {
        let kind = if c.is_uppercase() {
            0
        } else if c.is_lowercase() {
            1
        } else if c.is_ascii_digit() {
            2
        } else if c.is_alphabetic() {
            4
        } else {
            3
        };
        kinds[kind] = true;
    }
    kinds.iter().filter(|k| **k).count() >= 3
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn policy() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 8,
            complexity: true,
            min_age_seconds: DAY,
            history_length: 24,
        }
    }

    fn refused(pw: &str) -> Refused<'_> {
        Refused {
            new_password: pw,
            sam_account_name: Some("asmith"),
            display_name: Some("Alice Smith-Jones"),
            last_set: Some(1_000_000),
            now: 1_000_000 + 2 * DAY as i64,
            is_change: true,
            dc_text: "0000052D: Constraint violation",
        }
    }

    #[test]
    fn complexity_follows_ads_rule() {
        assert!(is_complex("Tr0ub4dor", None, None));
        assert!(is_complex("tr0ub4dor!", None, None));
        assert!(!is_complex("troubadour", None, None));
        assert!(!is_complex("Troubadour", None, None));
        assert!(is_complex("Troubadour!", None, None));
        // Letters that are neither upper nor lower case count as a fifth kind.
        assert!(is_complex("日本語abc1", None, None));
        assert!(!is_complex("xASMITHx1!", Some("asmith"), None));
        assert!(is_complex("xASMx1!", Some("as"), None));
        assert!(!is_complex(
            "Jones2024!",
            Some("x"),
            Some("Alice Smith-Jones")
        ));
        assert!(is_complex("Al2024!x", Some("x"), Some("Al Bo")));
    }

    #[test]
    fn each_rule_is_named() {
        let p = policy();
        assert_eq!(
            diagnose(&p, &refused("Ab1!")),
            PasswordRefusal::TooShort { min_length: 8 }
        );
        assert_eq!(
            diagnose(&p, &refused("longbutsimple")),
            PasswordRefusal::NotComplex
        );
        assert_eq!(
            diagnose(&p, &refused("Smith2024!!")),
            PasswordRefusal::NotComplex
        );
        let mut young = refused("Good-Passw0rd");
        young.now = 1_000_000 + 3600;
        assert_eq!(
            diagnose(&p, &young),
            PasswordRefusal::TooYoung {
                min_age_seconds: DAY
            }
        );
        // A reset is not subject to the minimum age.
        young.is_change = false;
        assert_eq!(
            diagnose(&p, &young),
            PasswordRefusal::InHistory { history_length: 24 }
        );
        assert_eq!(
            diagnose(&p, &refused("Good-Passw0rd")),
            PasswordRefusal::InHistory { history_length: 24 }
        );
        let open = PasswordPolicy::default();
        assert_eq!(diagnose(&open, &refused("x")), PasswordRefusal::Other);
    }

    #[test]
    fn samba_text_names_the_rule_when_the_policy_cannot() {
        let open = PasswordPolicy::default();
        let mut r = refused("whatever");
        r.dc_text = "0000052D: Constraint violation - check_password_restrictions: the password was already used (in history)!";
        assert_eq!(
            diagnose(&open, &r),
            PasswordRefusal::InHistory { history_length: 0 }
        );
        r.dc_text = "0000052D: Constraint violation - check_password_restrictions: password is too young to change!";
        assert!(matches!(
            diagnose(&open, &r),
            PasswordRefusal::TooYoung { .. }
        ));
    }

    #[test]
    fn policies_are_read_from_ad_values() {
        let domain = |name: &str| match name {
            "minPwdLength" => Some("7".to_string()),
            "pwdProperties" => Some("1".to_string()),
            "minPwdAge" => Some("-864000000000".to_string()),
            "pwdHistoryLength" => Some("24".to_string()),
            _ => None,
        };
        assert_eq!(
            PasswordPolicy::from_domain(domain),
            PasswordPolicy {
                min_length: 7,
                complexity: true,
                min_age_seconds: DAY,
                history_length: 24
            }
        );
        let pso = |name: &str| match name {
            "msDS-MinimumPasswordLength" => Some("12".to_string()),
            "msDS-PasswordComplexityEnabled" => Some("FALSE".to_string()),
            _ => None,
        };
        assert_eq!(
            PasswordPolicy::from_pso(pso),
            PasswordPolicy {
                min_length: 12,
                ..PasswordPolicy::default()
            }
        );
        assert_eq!(pwd_last_set("0"), None);
        assert_eq!(pwd_last_set("116444736000000000"), Some(0));
    }
}
