//! TOTP (RFC 6238) as authenticator apps know it: HMAC-SHA-1, 6 digits, 30-second steps,
//! one step of tolerance either side. The HOTP computation is `totp-rs`'s; the time is always
//! a parameter, so tests are deterministic.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds per time step.
pub const STEP_SECS: u64 = 30;
/// Secret length in bytes (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

/// A new random secret.
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let mut s = Zeroizing::new(vec![0u8; SECRET_LEN]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut s);
    s
}

/// The secret in base32 (RFC 4648, no padding), as authenticator apps take it typed.
pub fn base32(secret: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(totp(secret, DIGITS).get_secret_base32())
}

/// The secret in base32 in groups of four, easier to type.
pub fn base32_grouped(secret: &[u8]) -> Zeroizing<String> {
    let plain = base32(secret);
    let mut out = Zeroizing::new(String::with_capacity(plain.len() + plain.len() / 4));
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The `otpauth://` URI authenticator apps read from the QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> Zeroizing<String> {
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        base32(secret).as_str(),
        enc(issuer)
    ))
}

fn totp(secret: &[u8], digits: usize) -> TOTP {
    // `new_unchecked`: the length is ours to choose (SECRET_LEN), and the RFC's test vectors
    // use their own. The copy of the secret is zeroized when the TOTP is dropped.
    TOTP::new_unchecked(Algorithm::SHA1, digits, 1, STEP_SECS, secret.to_vec())
}

/// The time step of a Unix time.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS as i64)
}

/// The code of time step `step`.
pub fn code_for_step(secret: &[u8], step: i64) -> Option<Zeroizing<String>> {
    let t = u64::try_from(step).ok()?.checked_mul(STEP_SECS)?;
    Some(Zeroizing::new(totp(secret, DIGITS).generate(t)))
}

/// Whether `code` has the shape of a TOTP code (six ASCII digits).
pub fn looks_like_code(code: &str) -> bool {
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// The time step whose code `code` is, within one step of `now`, and later than `after` (the
/// last step accepted: a code is accepted once). Every candidate is compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, now: i64, after: Option<i64>) -> Option<i64> {
    if !looks_like_code(code) {
        return None;
    }
    let current = step_of(now);
    let mut found = None;
    for step in [current - 1, current, current + 1] {
        if after.is_some_and(|a| step <= a) {
            continue;
        }
        let Some(expected) = code_for_step(secret, step) else {
            continue;
        };
        if crate::issue::secrets_equal(expected.as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (8 digits, secret "12345678901234567890").
    #[test]
    fn rfc6238_vectors() -> anyhow::Result<()> {
        let secret = b"12345678901234567890";
        let vectors = [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ];
        let t8 = totp(secret, 8);
        for (time, code) in vectors {
            assert_eq!(t8.generate(time), code, "t={time}");
            // The 6-digit code is the last six digits of the same truncation.
            let six = code_for_step(secret, step_of(time as i64))
                .ok_or_else(|| anyhow::anyhow!("no code"))?;
            assert_eq!(six.as_str(), &code[2..], "t={time}");
        }
        Ok(())
    }

    #[test]
    fn window_and_step_reuse() -> anyhow::Result<()> {
        let secret = new_secret();
        let now = 1_700_000_015;
        let s = step_of(now);
        let code = |step| code_for_step(&secret, step).ok_or_else(|| anyhow::anyhow!("no code"));
        assert_eq!(matching_step(&secret, &code(s)?, now, None), Some(s));
        assert_eq!(
            matching_step(&secret, &code(s - 1)?, now, None),
            Some(s - 1)
        );
        assert_eq!(
            matching_step(&secret, &code(s + 1)?, now, None),
            Some(s + 1)
        );
        assert_eq!(matching_step(&secret, &code(s - 2)?, now, None), None);
        assert_eq!(matching_step(&secret, &code(s + 2)?, now, None), None);
        // A step already accepted (or an earlier one) is refused.
        assert_eq!(matching_step(&secret, &code(s)?, now, Some(s)), None);
        assert_eq!(matching_step(&secret, &code(s - 1)?, now, Some(s)), None);
        assert_eq!(
            matching_step(&secret, &code(s + 1)?, now, Some(s)),
            Some(s + 1)
        );
        // Only six digits are codes.
        assert_eq!(matching_step(&secret, "12345", now, None), None);
        assert_eq!(matching_step(&secret, "12345a", now, None), None);
        Ok(())
    }

    #[test]
    fn uri_and_base32() {
        let secret = b"12345678901234567890";
        assert_eq!(base32(secret).as_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            base32_grouped(secret).as_str(),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
        let uri = otpauth_uri("Passthru contoso", "a@contoso.example", secret);
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Passthru%20contoso:a%40contoso%2Eexample?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Passthru%20contoso&algorithm=SHA1&digits=6&period=30"
        );
    }
}
