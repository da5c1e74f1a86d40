//! Password verifiers: check a stored server-side hash against a secret, locally.

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// MariaDB/MySQL `mysql_native_password`: `*` + upper hex of SHA1(SHA1(password)).
pub fn mysql_native_matches(verifier: &str, password: &str) -> bool {
    let inner = Sha1::digest(password.as_bytes());
    let outer = Sha1::digest(inner);
    let expected = format!("*{}", hex::encode_upper(outer));
    verifier.eq_ignore_ascii_case(&expected)
}

/// PostgreSQL `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn scram_matches(verifier: &str, password: &str) -> bool {
    use base64::Engine as _;
    let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    let Some(rest) = verifier.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((params, keys)) = rest.split_once('$') else {
        return false;
    };
    let Some((iterations, salt)) = params.split_once(':') else {
        return false;
    };
    let Some((stored_key, _server_key)) = keys.split_once(':') else {
        return false;
    };
    let (Ok(iterations), Some(salt), Some(stored_key)) =
        (iterations.parse::<u32>(), decode(salt), decode(stored_key))
    else {
        return false;
    };
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let client_key = hmac_sha256(&salted, b"Client Key");
    Sha256::digest(client_key)[..] == stored_key[..]
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_native_password_hash_matches_the_password() {
        // SELECT PASSWORD('secret') on MariaDB.
        let verifier = "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7";
        assert!(mysql_native_matches(verifier, "secret"));
        assert!(!mysql_native_matches(verifier, "Secret"));
    }

    #[test]
    fn scram_verifier_matches_the_password() {
        // Computed independently (Python hashlib) for the password `secret`, as PostgreSQL
        // stores it.
        let verifier = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$Ce3wZiZ+yIBCjltccfRiqM0+XDsLE3qPdkEeZKe3hus=:k3q4nlLsA09ST5FLo9zNmfyXR+Ci1J4KmBK5JRVSxeI=";
        assert!(scram_matches(verifier, "secret"));
        assert!(!scram_matches(verifier, "wrong"));
        assert!(!scram_matches("md5abc", "secret"));
    }
}
