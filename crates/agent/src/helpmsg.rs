//! `passthru-agent helpmsg CODE`: what a code of the trace log means and what to do, like
//! `net helpmsg`. Win32 codes (denials) come from the proto catalog; the AADSTS codes the
//! trace log writes for agent errors (800xx) are explained too.

use passthru_proto::{AgentError, Win32};

/// The code is not one Passthru writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelpError {
    /// Not a number, or a number no catalog knows.
    #[error(
        "'{given}' is not a code the agent writes. Known Win32 codes: {win32}; agent error \
         codes: {agent}."
    )]
    UnknownCode {
        /// What was given.
        given: String,
        /// The known Win32 codes.
        win32: String,
        /// The known agent error codes.
        agent: String,
    },
}

const AGENT_ERRORS: [AgentError; 9] = [
    AgentError::DirectoryUnreachable,
    AgentError::DirectoryTimeout,
    AgentError::DirectoryError,
    AgentError::NotRoutable,
    AgentError::DecryptFailed,
    AgentError::NoKey,
    AgentError::ClockSkew,
    AgentError::Expired,
    AgentError::Replayed,
];

/// What to do about an agent error code (the trace log's `Reason` for errors).
fn agent_action(code: u32) -> &'static str {
    match code {
        80001 => "Check LDAPS (port 636) from this computer to the forest's domain controllers, and the agent's log.",
        80002 => "Check the agent's load and the domain controllers' response times; add agents or domain controllers if they are busy.",
        80004 => "Add the user's UPN suffix to the upn_suffixes of the right [[forest]] in the agent's configuration.",
        80007 => "See the agent's log for the directory's message; check the domain controllers' health.",
        80010 => "If it repeats, register the agent again (passthru-agent register --force).",
        80011 => "Register the agent again (passthru-agent register --force): the cloud holds another key for it.",
        80013 => "Synchronise this computer's clock (NTP).",
        _ => "See the agent's log.",
    }
}

/// The two lines `helpmsg` prints for `code`.
pub fn helpmsg(code: &str) -> Result<String, HelpError> {
    let number = code.trim().parse::<u32>().ok();
    if let Some(w) = number.and_then(Win32::from_code) {
        return Ok(format!(
            "{}: {}\nWhat to do: {}",
            w.code(),
            w.message(),
            w.admin_action()
        ));
    }
    if let Some(aadsts) = number.and_then(|n| {
        AGENT_ERRORS
            .iter()
            .map(|e| e.aadsts())
            .find(|a| a.code() == n)
    }) {
        return Ok(format!(
            "{}: {}\nWhat to do: {}",
            aadsts.code(),
            aadsts.description(),
            agent_action(aadsts.code())
        ));
    }
    let win32: Vec<String> = Win32::ALL.iter().map(|w| w.code().to_string()).collect();
    let mut agent: Vec<u32> = AGENT_ERRORS.iter().map(|e| e.aadsts().code()).collect();
    agent.sort_unstable();
    agent.dedup();
    let agent: Vec<String> = agent.iter().map(u32::to_string).collect();
    Err(HelpError::UnknownCode {
        given: code.to_string(),
        win32: win32.join(", "),
        agent: agent.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win32_codes() {
        let text = helpmsg("1328").unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            format!("1328: {}", Win32::InvalidLogonHours.message())
        );
        assert_eq!(
            lines[1],
            format!("What to do: {}", Win32::InvalidLogonHours.admin_action())
        );
        for w in Win32::ALL {
            assert!(helpmsg(&w.code().to_string()).is_ok());
        }
    }

    #[test]
    fn agent_error_codes() {
        let text = helpmsg("80013").unwrap_or_default();
        assert!(text.starts_with("80013: "));
        assert!(text.contains("What to do: Synchronise"));
        assert!(helpmsg(&AgentError::DecryptFailed.trace_reason()).is_ok());
    }

    #[test]
    fn unknown_codes_are_refused_clearly() {
        for bad in ["1234", "abc", "", "-1"] {
            let err = helpmsg(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("is not a code the agent writes"), "{err}");
            assert!(err.contains("1326") && err.contains("80010"), "{err}");
        }
    }
}
