//! Server side of SASL for c2s: SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802, RFC 7677) and PLAIN
//! (RFC 4616), verified against the stored StoredKey/ServerKey.
//!
//! Written here rather than taken from the `sasl` crate: its server mechanisms need the salted
//! password, which is a password equivalent, while Plughost stores (and imports from Prosody and
//! ejabberd) only StoredKey and ServerKey, from which no client proof can be forged.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Mac, SimpleHmac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::credentials;
use crate::store::{Credential, Mechanism};

/// The mechanisms offered, strongest first. They are offered before the user is known, so an
/// account imported from ejabberd or Prosody (SCRAM-SHA-1 only) fails SCRAM-SHA-256 until its
/// first PLAIN login derives that credential; SCRAM-SHA-1 and PLAIN work for every account.
pub const MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"];

/// Why an exchange failed; all of them answer `<not-authorized/>` or `<malformed-request/>`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaslError {
    #[error("malformed SASL message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("authentication failed")]
    NotAuthorized,
    #[error("the client aborted the exchange")]
    Aborted,
}

/// Where the server gets a user's stored credential: `None` when there is no such user (or no
/// credential for that mechanism).
pub trait CredentialSource {
    fn credential(&self, username: &str, mechanism: Mechanism) -> Option<Credential>;
    /// PLAIN only: checks a password.
    fn verify_plain(&self, username: &str, password: &str) -> bool;
}

/// What the server says after a client message.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send a challenge and wait for the response.
    Challenge(Vec<u8>),
    /// Authenticated as `username`; send success with this additional data.
    Success { username: String, additional: Vec<u8> },
}

/// One SCRAM exchange in progress.
pub struct ScramExchange {
    mechanism: Mechanism,
    username: String,
    client_first_bare: String,
    server_first: String,
    gs2_header: String,
    nonce: String,
    /// `None` for an unknown user: the exchange runs to the end with made-up values so that
    /// timing and messages do not tell whether a user exists (RFC 5802 §5.1, "e=" is not sent).
    credential: Option<Credential>,
}

/// Starts an exchange for `mechanism` with the client's initial message. PLAIN completes at once.
pub fn start(
    mechanism: &str,
    initial: &[u8],
    source: &dyn CredentialSource,
) -> Result<(Step, Option<ScramExchange>), SaslError> {
    match mechanism {
        "PLAIN" => plain(initial, source).map(|step| (step, None)),
        "SCRAM-SHA-256" => scram_first(Mechanism::ScramSha256, initial, source),
        "SCRAM-SHA-1" => scram_first(Mechanism::ScramSha1, initial, source),
        _ => Err(SaslError::Malformed("unknown mechanism")),
    }
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`. An authzid must be empty or the user's own JID.
fn plain(message: &[u8], source: &dyn CredentialSource) -> Result<Step, SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| SaslError::Malformed("PLAIN is not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed("PLAIN needs three NUL-separated fields"));
    };
    if username.is_empty() {
        return Err(SaslError::Malformed("PLAIN without a user name"));
    }
    if !authzid.is_empty() && !authzid.starts_with(&format!("{username}@")) {
        return Err(SaslError::NotAuthorized);
    }
    if source.verify_plain(username, password) {
        Ok(Step::Success { username: username.to_owned(), additional: Vec::new() })
    } else {
        Err(SaslError::NotAuthorized)
    }
}

fn scram_first(
    mechanism: Mechanism,
    message: &[u8],
    source: &dyn CredentialSource,
) -> Result<(Step, Option<ScramExchange>), SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| SaslError::Malformed("not UTF-8"))?;
    // gs2-header: "n,," or "y,," (no channel binding); "p=..." asks for binding we do not offer.
    let mut fields = text.splitn(3, ',');
    let (Some(binding), Some(authzid), Some(bare)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(SaslError::Malformed("no GS2 header"));
    };
    match binding {
        "n" | "y" => {}
        _ if binding.starts_with("p=") => return Err(SaslError::ChannelBinding),
        _ => return Err(SaslError::Malformed("bad GS2 channel binding flag")),
    }
    if !authzid.is_empty() && !authzid.starts_with("a=") {
        return Err(SaslError::Malformed("bad GS2 authzid"));
    }
    let attributes = parse_attributes(bare)?;
    let username = decode_saslname(attribute(&attributes, 'n')?)?;
    let client_nonce = attribute(&attributes, 'r')?;
    if client_nonce.is_empty() {
        return Err(SaslError::Malformed("empty nonce"));
    }
    let credential = source.credential(&username, mechanism);
    let (salt, iterations) = match &credential {
        Some(credential) => (credential.salt.clone(), credential.iterations),
        None => (rand::random::<[u8; 16]>().to_vec(), credentials::ITERATIONS),
    };
    let server_nonce: [u8; 18] = rand::random();
    let nonce = format!("{client_nonce}{}", STANDARD.encode(server_nonce));
    let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(&salt));
    let exchange = ScramExchange {
        mechanism,
        username,
        client_first_bare: bare.to_owned(),
        server_first: server_first.clone(),
        gs2_header: format!("{binding},{authzid},"),
        nonce,
        credential,
    };
    Ok((Step::Challenge(server_first.into_bytes()), Some(exchange)))
}

impl ScramExchange {
    /// Checks the client-final message (RFC 5802 §3) and returns the server signature.
    pub fn finish(self, message: &[u8]) -> Result<Step, SaslError> {
        let text = std::str::from_utf8(message).map_err(|_| SaslError::Malformed("not UTF-8"))?;
        let (without_proof, proof) =
            text.rsplit_once(",p=").ok_or(SaslError::Malformed("client-final without a proof"))?;
        let attributes = parse_attributes(without_proof)?;
        let binding = STANDARD
            .decode(attribute(&attributes, 'c')?)
            .map_err(|_| SaslError::Malformed("channel binding is not base64"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(SaslError::Malformed("channel binding does not match the GS2 header"));
        }
        if attribute(&attributes, 'r')? != self.nonce {
            return Err(SaslError::NotAuthorized);
        }
        let proof = STANDARD.decode(proof).map_err(|_| SaslError::Malformed("proof is not base64"))?;
        let Some(credential) = self.credential else { return Err(SaslError::NotAuthorized) };
        let auth_message = format!("{},{},{without_proof}", self.client_first_bare, self.server_first);
        let (stored_key, server_signature) = match self.mechanism {
            Mechanism::ScramSha1 => signatures::<Sha1>(&credential, &auth_message, &proof),
            Mechanism::ScramSha256 => signatures::<Sha256>(&credential, &auth_message, &proof),
        }
        .ok_or(SaslError::NotAuthorized)?;
        if !crate::access::secrets_equal(&stored_key, &credential.stored_key) {
            return Err(SaslError::NotAuthorized);
        }
        let additional = format!("v={}", STANDARD.encode(server_signature)).into_bytes();
        Ok(Step::Success { username: self.username, additional })
    }
}

/// RFC 5802 §3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client is genuine
/// when H(ClientKey) equals StoredKey. Returns (H(ClientKey), ServerSignature).
fn signatures<H>(credential: &Credential, auth_message: &str, proof: &[u8]) -> Option<(Vec<u8>, Vec<u8>)>
where
    H: Digest + hmac::digest::core_api::BlockSizeUser,
{
    let mac = |key: &[u8]| {
        let mut mac = <SimpleHmac<H> as hmac::digest::KeyInit>::new_from_slice(key).ok()?;
        mac.update(auth_message.as_bytes());
        Some(mac.finalize().into_bytes().to_vec())
    };
    let client_signature = mac(&credential.stored_key)?;
    if proof.len() != client_signature.len() {
        return None;
    }
    let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
    let server_signature = mac(&credential.server_key)?;
    Some((H::digest(&client_key).to_vec(), server_signature))
}

fn parse_attributes(text: &str) -> Result<Vec<(char, &str)>, SaslError> {
    text.split(',')
        .map(|field| {
            let mut chars = field.chars();
            match (chars.next(), chars.next()) {
                (Some(key), Some('=')) if key.is_ascii_alphabetic() => Ok((key, &field[2..])),
                _ => Err(SaslError::Malformed("bad attribute")),
            }
        })
        .collect()
}

fn attribute<'a>(attributes: &[(char, &'a str)], key: char) -> Result<&'a str, SaslError> {
    attributes
        .iter()
        .find(|(candidate, _)| *candidate == key)
        .map(|(_, value)| *value)
        .ok_or(SaslError::Malformed("missing attribute"))
}

/// RFC 5802 §5.1: `=2C` is ',' and `=3D` is '='; any other '=' is an error.
fn decode_saslname(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(index) = rest.find('=') {
        out.push_str(&rest[..index]);
        match rest.get(index..index + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslError::Malformed("bad escape in user name")),
        }
        rest = &rest[index + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(SaslError::Malformed("empty user name"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pencil;

    impl CredentialSource for Pencil {
        fn credential(&self, username: &str, mechanism: Mechanism) -> Option<Credential> {
            let salt = match mechanism {
                Mechanism::ScramSha1 => STANDARD.decode("QSXCR+Q6sek8bf92").unwrap(),
                Mechanism::ScramSha256 => STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
            };
            (username == "user").then(|| credentials::derive(mechanism, "pencil", &salt, 4096))
        }

        fn verify_plain(&self, username: &str, password: &str) -> bool {
            username == "user" && password == "pencil"
        }
    }

    /// Replays the RFC's exchange with the RFC's server nonce, so the RFC's proof must verify.
    fn replay(
        mechanism: Mechanism,
        client_first: &str,
        server_nonce_suffix: &str,
        client_final: &str,
    ) -> Step {
        let name = if mechanism == Mechanism::ScramSha1 { "SCRAM-SHA-1" } else { "SCRAM-SHA-256" };
        let (_, exchange) = start(name, client_first.as_bytes(), &Pencil).unwrap();
        let mut exchange = exchange.unwrap();
        let client_nonce = exchange.nonce.split_at(exchange.nonce.len() - 24).0.to_owned();
        exchange.nonce = format!("{client_nonce}{server_nonce_suffix}");
        let credential = exchange.credential.clone().unwrap();
        exchange.server_first =
            format!("r={},s={},i=4096", exchange.nonce, STANDARD.encode(&credential.salt));
        exchange.finish(client_final.as_bytes()).unwrap()
    }

    #[test]
    fn rfc5802_exchange_verifies() {
        let step = replay(
            Mechanism::ScramSha1,
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        );
        assert_eq!(
            step,
            Step::Success { username: "user".into(), additional: b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=".to_vec() }
        );
    }

    #[test]
    fn rfc7677_exchange_verifies() {
        let step = replay(
            Mechanism::ScramSha256,
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert_eq!(
            step,
            Step::Success {
                username: "user".into(),
                additional: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            }
        );
    }

    #[test]
    fn wrong_proofs_and_unknown_users_fail_alike() {
        let (_, exchange) = start("SCRAM-SHA-1", b"n,,n=user,r=abc", &Pencil).unwrap();
        let exchange = exchange.unwrap();
        let final_message = format!("c=biws,r={},p={}", exchange.nonce, STANDARD.encode([0u8; 20]));
        assert_eq!(exchange.finish(final_message.as_bytes()), Err(SaslError::NotAuthorized));
        let (Step::Challenge(challenge), Some(exchange)) =
            start("SCRAM-SHA-1", b"n,,n=nobody,r=abc", &Pencil).unwrap()
        else {
            panic!("an unknown user still gets a challenge")
        };
        assert!(challenge.starts_with(b"r=abc"));
        let final_message = format!("c=biws,r={},p={}", exchange.nonce, STANDARD.encode([0u8; 20]));
        assert_eq!(exchange.finish(final_message.as_bytes()), Err(SaslError::NotAuthorized));
        assert_eq!(
            start("SCRAM-SHA-1", b"p=tls-unique,,n=user,r=abc", &Pencil).err(),
            Some(SaslError::ChannelBinding)
        );
    }

    #[test]
    fn plain() {
        assert!(matches!(start("PLAIN", b"\0user\0pencil", &Pencil), Ok((Step::Success { .. }, None))));
        assert_eq!(start("PLAIN", b"\0user\0pen", &Pencil).err(), Some(SaslError::NotAuthorized));
        assert!(matches!(start("PLAIN", b"user\0pencil", &Pencil), Err(SaslError::Malformed(_))));
    }
}
