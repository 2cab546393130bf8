//! Who must prove a second factor: the tenant's `mfa` setting, a user's own override, and
//! what the two mean for a sign-in.

use serde::Serialize;

/// An MFA policy: the tenant's setting, or a user's effective policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Nobody is asked for a second factor (enrolments are kept, unused).
    Off,
    /// Users who enrolled are asked for a code; the others may enrol at `/{tenant}/mfa/setup`.
    Optional,
    /// Everyone is asked for a code; a user who has not enrolled enrols at sign-in.
    Required,
}

impl Policy {
    /// The value as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Off => "off",
            Policy::Optional => "optional",
            Policy::Required => "required",
        }
    }

    /// Parses `off`, `optional` or `required` (any case).
    pub fn parse(s: &str) -> Option<Policy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Some(Policy::Off),
            "optional" => Some(Policy::Optional),
            "required" => Some(Policy::Required),
            _ => None,
        }
    }
}

/// A user's own policy: `None` follows the tenant's setting (`default`).
pub type UserPolicy = Option<Policy>;

/// A user policy as stored and shown: `default`, `off`, `optional` or `required`.
pub fn user_policy_str(p: UserPolicy) -> &'static str {
    p.map_or("default", Policy::as_str)
}

/// Parses a user policy; `None` when the text is none of the four values.
pub fn parse_user_policy(s: &str) -> Option<UserPolicy> {
    if s.trim().eq_ignore_ascii_case("default") {
        return Some(None);
    }
    Policy::parse(s).map(Some)
}

/// The policy that applies to a user: their own when they have one, else the tenant's.
pub fn effective(tenant: Policy, user: UserPolicy) -> Policy {
    user.unwrap_or(tenant)
}

/// What a sign-in whose password was right needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: the sign-in is complete.
    Done,
    /// A code of the enrolled authenticator (or a recovery code).
    Code,
    /// Enrolment of an authenticator first (policy `required`, not enrolled).
    Enrol,
}

/// The step after the password for a user of `effective` policy.
pub fn next_step(effective: Policy, enrolled: bool) -> Next {
    match (effective, enrolled) {
        (Policy::Off, _) => Next::Done,
        (_, true) => Next::Code,
        (Policy::Optional, false) => Next::Done,
        (Policy::Required, false) => Next::Enrol,
    }
}

/// Whether the password grant (which cannot ask for a code) must be refused with 50076.
pub fn password_grant_refused(effective: Policy, enrolled: bool) -> bool {
    next_step(effective, enrolled) != Next::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_table() {
        use Policy::*;
        // (tenant, user, enrolled) -> (effective, next step, password grant refused)
        let table = [
            (Off, None, false, Off, Next::Done, false),
            (Off, None, true, Off, Next::Done, false),
            (Optional, None, false, Optional, Next::Done, false),
            (Optional, None, true, Optional, Next::Code, true),
            (Required, None, false, Required, Next::Enrol, true),
            (Required, None, true, Required, Next::Code, true),
            (Off, Some(Required), false, Required, Next::Enrol, true),
            (Off, Some(Optional), true, Optional, Next::Code, true),
            (Required, Some(Off), true, Off, Next::Done, false),
            (Required, Some(Optional), false, Optional, Next::Done, false),
            (Optional, Some(Required), true, Required, Next::Code, true),
        ];
        for (tenant, user, enrolled, eff, next, refused) in table {
            let e = effective(tenant, user);
            assert_eq!(e, eff, "{tenant:?} {user:?}");
            assert_eq!(
                next_step(e, enrolled),
                next,
                "{tenant:?} {user:?} {enrolled}"
            );
            assert_eq!(password_grant_refused(e, enrolled), refused);
        }
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_user_policy("Default"), Some(None));
        assert_eq!(parse_user_policy("REQUIRED"), Some(Some(Policy::Required)));
        assert_eq!(parse_user_policy("sometimes"), None);
        for p in [Policy::Off, Policy::Optional, Policy::Required] {
            assert_eq!(Policy::parse(p.as_str()), Some(p));
            assert_eq!(parse_user_policy(user_policy_str(Some(p))), Some(Some(p)));
        }
        assert_eq!(user_policy_str(None), "default");
    }
}
