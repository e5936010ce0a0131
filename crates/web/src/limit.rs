//! Sign-in rate limiting: after `MAX_FAILURES` wrong passwords for one
//! address within `WINDOW`, that address cannot sign in until the oldest
//! of them is `WINDOW` old, whatever password comes next. Counted in the
//! database (`Store::sign_in_attempt`), before the password is checked and
//! under a lock on the address, so parallel attempts and several replicas
//! share one count, and memory holds nothing of it. An address that does
//! not exist costs the same password check as one that does.

use chrono::TimeDelta;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub const MAX_FAILURES: usize = 5;
pub const WINDOW: TimeDelta = TimeDelta::minutes(15);

/// What the store keeps of an address: its hash, never the address
/// (sign-in attempts name addresses that may belong to nobody).
pub fn address_key(address: &str) -> String {
    hex::encode(Sha256::digest(format!("sign-in\x1f{address}").as_bytes()))
}

/// A password hash no password matches, checked for an address with no
/// account (or no password), so that such an address takes as long to
/// refuse as a wrong password for a real one.
pub fn nobodys_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let (unguessable, _) = crate::auth::new_token();
        crate::auth::hash_password(&unguessable).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kept_as_hashes_and_nobody_s_hash_matches_no_password() {
        let key = address_key("carol@client-a.example");
        assert_eq!(key.len(), 64);
        assert!(!key.contains("carol"));
        assert_ne!(key, address_key("dan@client-a.example"));
        let hash = nobodys_hash();
        assert!(hash.starts_with("$argon2"), "{hash}");
        assert!(!crate::auth::verify_password("", hash));
        assert!(!crate::auth::verify_password(
            "correct horse battery staple",
            hash
        ));
    }
}
