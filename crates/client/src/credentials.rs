//! The administrator's credentials: from the environment, else asked on the terminal.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use zeroize::Zeroizing;

use crate::error::ClientError;

/// Environment variable holding the administrator's user principal name.
pub const ADMIN_UPN_ENV: &str = "PASSTHRU_ADMIN_UPN";
/// Environment variable holding the administrator's password.
pub const ADMIN_PASSWORD_ENV: &str = "PASSTHRU_ADMIN_PASSWORD";

/// Asks a person for what the environment did not give.
trait Prompter {
    /// Reads one visible line.
    fn line(&mut self, prompt: &str) -> std::io::Result<String>;
    /// Reads a password without echo.
    fn password(&mut self, prompt: &str) -> std::io::Result<Zeroizing<String>>;
}

/// The process's terminal.
struct Terminal;

impl Prompter for Terminal {
    fn line(&mut self, prompt: &str) -> std::io::Result<String> {
        let mut err = std::io::stderr();
        err.write_all(prompt.as_bytes())?;
        err.flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim().to_string())
    }

    fn password(&mut self, prompt: &str) -> std::io::Result<Zeroizing<String>> {
        rpassword::prompt_password(prompt).map(Zeroizing::new)
    }
}

fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether the environment names the administrator (`PASSTHRU_ADMIN_UPN` or
/// `PASSTHRU_ADMIN_PASSWORD` set and not empty): the password grant is then what signs in.
pub fn admin_credentials_in_env() -> bool {
    from_env(ADMIN_UPN_ENV).is_some() || from_env(ADMIN_PASSWORD_ENV).is_some()
}

/// The administrator's UPN and password: `PASSTHRU_ADMIN_UPN` and `PASSTHRU_ADMIN_PASSWORD`,
/// else asked on the terminal (the password without echo). Without a terminal and without
/// those variables, an error that names the variables to set.
pub fn admin_credentials_from_env_or_prompt() -> Result<(String, Zeroizing<String>), ClientError> {
    let upn = from_env(ADMIN_UPN_ENV);
    let password = from_env(ADMIN_PASSWORD_ENV).map(Zeroizing::new);
    let terminal = std::io::stdin().is_terminal();
    resolve(upn, password, terminal, &mut Terminal)
}

fn resolve(
    upn: Option<String>,
    password: Option<Zeroizing<String>>,
    terminal: bool,
    prompter: &mut dyn Prompter,
) -> Result<(String, Zeroizing<String>), ClientError> {
    if let (Some(upn), Some(password)) = (&upn, &password) {
        return Ok((upn.clone(), password.clone()));
    }
    if !terminal {
        let missing: Vec<&str> = [
            (upn.is_none(), ADMIN_UPN_ENV),
            (password.is_none(), ADMIN_PASSWORD_ENV),
        ]
        .into_iter()
        .filter_map(|(is_missing, name)| is_missing.then_some(name))
        .collect();
        return Err(ClientError::Config(format!(
            "no terminal to ask for the administrator's credentials: run the command again \
             with --device-code to sign in through a web browser (needed when the \
             administrator must prove a second factor), or set {} (the user principal name \
             and cloud password of a Global Administrator or Hybrid Identity Administrator of \
             the tenant)",
            missing.join(" and ")
        )));
    }
    let io = |what: &str| {
        let what = what.to_string();
        move |source| ClientError::Io { what, source }
    };
    let upn = match upn {
        Some(u) => u,
        None => prompter
            .line("Administrator (user principal name): ")
            .map_err(io("cannot read the administrator's name from the terminal"))?,
    };
    if upn.is_empty() {
        return Err(ClientError::Config(format!(
            "no administrator name given: type it, or set {ADMIN_UPN_ENV}"
        )));
    }
    let password = match password {
        Some(p) => p,
        None => prompter
            .password(&format!("Password for {upn}: "))
            .map_err(io("cannot read the password from the terminal"))?,
    };
    if password.is_empty() {
        return Err(ClientError::Config(format!(
            "no password given: type it, or set {ADMIN_PASSWORD_ENV}"
        )));
    }
    Ok((upn, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scripted {
        lines: Vec<String>,
        asked: Vec<String>,
    }

    impl Prompter for Scripted {
        fn line(&mut self, prompt: &str) -> std::io::Result<String> {
            self.asked.push(prompt.to_string());
            Ok(self.lines.pop().unwrap_or_default())
        }
        fn password(&mut self, prompt: &str) -> std::io::Result<Zeroizing<String>> {
            self.asked.push(prompt.to_string());
            Ok(Zeroizing::new(self.lines.pop().unwrap_or_default()))
        }
    }

    #[test]
    fn environment_wins_and_no_prompt() {
        let mut p = Scripted {
            lines: vec![],
            asked: vec![],
        };
        let got = resolve(
            Some("admin@contoso.example".into()),
            Some(Zeroizing::new("pw".into())),
            false,
            &mut p,
        );
        assert!(
            matches!(got, Ok((ref u, ref pw)) if u == "admin@contoso.example" && pw.as_str() == "pw")
        );
        assert!(p.asked.is_empty());
    }

    #[test]
    fn without_terminal_the_error_names_the_missing_variables() {
        let mut p = Scripted {
            lines: vec![],
            asked: vec![],
        };
        let err = resolve(Some("a@b".into()), None, false, &mut p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(ADMIN_PASSWORD_ENV), "{err}");
        assert!(!err.contains(ADMIN_UPN_ENV), "{err}");
        let err = resolve(None, None, false, &mut p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(ADMIN_UPN_ENV) && err.contains(ADMIN_PASSWORD_ENV));
        assert!(err.contains("--device-code"), "{err}");
    }

    #[test]
    fn prompts_for_what_is_missing() {
        let mut p = Scripted {
            lines: vec!["secret".into(), "admin@contoso.example".into()],
            asked: vec![],
        };
        let got = resolve(None, None, true, &mut p);
        assert!(
            matches!(got, Ok((ref u, ref pw)) if u == "admin@contoso.example" && pw.as_str() == "secret")
        );
        assert_eq!(p.asked.len(), 2);
        assert!(p.asked[1].contains("admin@contoso.example"));
        assert!(!p.asked.iter().any(|a| a.contains("secret")));
    }
}
