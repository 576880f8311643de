//! Salted SCRAM credentials (RFC 5802 §3, RFC 7677): derived once from a password, stored, and
//! used to verify a password later without ever keeping it.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::digest::typenum::Unsigned;
use sha2::{Digest, Sha256};

use crate::store::{Credential, Mechanism};

/// RFC 7677 §4 asks for at least 4096 iterations; ejabberd uses the same.
pub const ITERATIONS: u32 = 4096;

/// Why a password cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must not be empty")]
    Empty,
    #[error("password contains characters that SASLprep (RFC 4013) prohibits")]
    Prohibited,
}

/// SASLprep (RFC 4013), as both SCRAM and PLAIN apply it before hashing.
pub fn prepare(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    stringprep::saslprep(password)
        .map(|prepared| prepared.into_owned())
        .map_err(|_| PasswordError::Prohibited)
}

/// Credentials for every stored mechanism, each with its own random salt. SCRAM-SHA-1 is kept
/// for everybody: it is the one mechanism an account imported from ejabberd or Prosody has, so
/// it is the one every client can rely on.
pub fn derive_all(prepared_password: &str) -> Vec<Credential> {
    [Mechanism::ScramSha1, Mechanism::ScramSha256]
        .into_iter()
        .map(|mechanism| fresh(mechanism, prepared_password))
        .collect()
}

/// A credential for `mechanism` with a new random salt.
pub fn fresh(mechanism: Mechanism, prepared_password: &str) -> Credential {
    let salt: [u8; 16] = rand::random();
    derive(mechanism, prepared_password, &salt, ITERATIONS)
}

/// RFC 5802 §3: SaltedPassword, then StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
/// ServerKey = HMAC(SaltedPassword, "Server Key").
pub fn derive(mechanism: Mechanism, prepared_password: &str, salt: &[u8], iterations: u32) -> Credential {
    // A macro rather than a generic function: the digest crates' trait bounds for "a hash usable
    // in HMAC and PBKDF2" are long, and there are exactly two hashes.
    macro_rules! keys {
        ($hash:ty) => {{
            let mut salted = [0u8; <$hash as sha2::digest::OutputSizeUser>::OutputSize::USIZE];
            pbkdf2::pbkdf2_hmac::<$hash>(prepared_password.as_bytes(), salt, iterations, &mut salted);
            let hmac = |message: &[u8]| {
                let mut mac =
                    Hmac::<$hash>::new_from_slice(&salted).expect("HMAC accepts keys of any length");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            };
            (<$hash>::digest(hmac(b"Client Key")).to_vec(), hmac(b"Server Key"))
        }};
    }
    let (stored_key, server_key) = match mechanism {
        Mechanism::ScramSha1 => keys!(Sha1),
        Mechanism::ScramSha256 => keys!(Sha256),
    };
    Credential { mechanism, salt: salt.to_vec(), iterations, stored_key, server_key }
}

/// Whether `prepared_password` matches the stored credential, compared in constant time.
pub fn verify(credential: &Credential, prepared_password: &str) -> bool {
    let candidate = derive(credential.mechanism, prepared_password, &credential.salt, credential.iterations);
    crate::access::secrets_equal(&candidate.stored_key, &credential.stored_key)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    /// RFC 5802 §5: user "user", password "pencil", salt QSXCR+Q6sek8bf92, 4096 iterations.
    /// The ServerSignature in the RFC is HMAC(ServerKey, AuthMessage) = rmF9pqV8S7suAoZWja4dJRkFsKQ=.
    #[test]
    fn rfc5802_example_server_key() {
        let salt = STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
        let credential = derive(Mechanism::ScramSha1, "pencil", &salt, 4096);
        let auth_message = "n=user,r=fyko+d2lbbFgONRv9qkxdawL,\
            r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,\
            c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let mut mac = Hmac::<Sha1>::new_from_slice(&credential.server_key).unwrap();
        mac.update(auth_message.as_bytes());
        assert_eq!(STANDARD.encode(mac.finalize().into_bytes()), "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    /// RFC 7677 §3: the same exchange with SHA-256, password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==.
    #[test]
    fn rfc7677_example_server_key() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = derive(Mechanism::ScramSha256, "pencil", &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let mut mac = Hmac::<Sha256>::new_from_slice(&credential.server_key).unwrap();
        mac.update(auth_message.as_bytes());
        assert_eq!(
            STANDARD.encode(mac.finalize().into_bytes()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn verify_accepts_only_the_password() {
        for credential in derive_all("correct horse") {
            assert!(verify(&credential, "correct horse"));
            assert!(!verify(&credential, "correct horsE"));
        }
        assert!(matches!(prepare(""), Err(PasswordError::Empty)));
        assert!(matches!(prepare("a\u{0007}b"), Err(PasswordError::Prohibited)));
    }
}
