//! Recovery codes: ten random one-time codes given at enrolment, stored only as SHA-256
//! (each has 50 random bits, so a fast hash is enough), each accepted once.

use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

/// Codes given at enrolment.
pub const COUNT: usize = 10;
/// Characters of a code (without the hyphen).
const LEN: usize = 10;
/// 32 digits and letters without look-alikes (no 0/O, 1/I): 5 bits each.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// New codes, `XXXXX-XXXXX`.
pub fn generate() -> Vec<Zeroizing<String>> {
    (0..COUNT)
        .map(|_| {
            let mut raw = Zeroizing::new([0u8; LEN]);
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, raw.as_mut());
            let mut code = Zeroizing::new(String::with_capacity(LEN + 1));
            for (i, b) in raw.iter().enumerate() {
                if i == LEN / 2 {
                    code.push('-');
                }
                // 256 is a multiple of 32: no bias.
                code.push(char::from(ALPHABET[usize::from(*b) % 32]));
            }
            code
        })
        .collect()
}

/// A typed code in canonical form (upper case, no spaces or hyphens), if it can be one.
pub fn normalize(typed: &str) -> Option<Zeroizing<String>> {
    let c: Zeroizing<String> = Zeroizing::new(
        typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    (c.len() == LEN && c.bytes().all(|b| ALPHABET.contains(&b))).then_some(c)
}

/// What the store keeps of a code: SHA-256 of the user id and the canonical code, hex.
pub fn hash(user_id: Uuid, typed: &str) -> Option<String> {
    let c = normalize(typed)?;
    let mut h = Sha256::new();
    h.update(user_id.as_bytes());
    h.update(c.as_bytes());
    Some(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_normalise() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let set: std::collections::HashSet<_> = codes.iter().map(|c| c.to_string()).collect();
        assert_eq!(set.len(), COUNT);
        let u = Uuid::new_v4();
        for c in &codes {
            assert_eq!(c.len(), LEN + 1);
            let typed = c.to_ascii_lowercase().replace('-', " ");
            assert_eq!(hash(u, &typed), hash(u, c));
            assert!(hash(u, c).is_some());
            assert_ne!(hash(u, c), hash(Uuid::new_v4(), c), "bound to the user");
        }
        assert_eq!(normalize("123456"), None);
        assert_eq!(
            normalize("ABCDE-FGHI0"),
            None,
            "0 and I are not in the alphabet"
        );
    }
}
