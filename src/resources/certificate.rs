//! Reading a certificate and its key from secrets: the names, the issuer and the expiry the
//! plan shows, and the checks that refuse a pair nginx would serve badly (a key of another
//! certificate, a broken chain, an expired certificate). Pure: no I/O.

use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// What the plan and the status show of a certificate; never anything of the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The DNS names of the leaf (its subject alternative names, else its common name).
    pub names: Vec<String>,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// When the leaf expires (unix seconds).
    pub not_after: i64,
    /// The SHA-256 of the leaf's DER, hex.
    pub sha256: String,
}

/// Why a certificate and key from secrets are refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    #[error("the certificate holds no PEM `CERTIFICATE` block")]
    NoCertificate,
    #[error("certificate {position} of the chain cannot be read: {reason}")]
    Unreadable { position: usize, reason: String },
    #[error("the key holds no PEM private key (`PRIVATE KEY` or `RSA PRIVATE KEY`)")]
    NoKey,
    #[error("the key cannot be read: {0}")]
    UnreadableKey(String),
    #[error("the key does not match the certificate: its public key is another one")]
    KeyMismatch,
    #[error("the chain is broken: certificate {position} was not issued by certificate {next}")]
    BrokenChain { position: usize, next: usize },
    #[error("certificate {position} of the chain expired on {date}")]
    Expired { position: usize, date: String },
}

impl CertificateError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            CertificateError::KeyMismatch => {
                "the certificate and the key come from different requests: give the key the certificate was issued for"
            }
            CertificateError::BrokenChain { .. } => {
                "put the certificate first, then each intermediate in order (a `fullchain.pem`)"
            }
            CertificateError::Expired { .. } => "renew the certificate, or switch to `acme`",
            CertificateError::UnreadableKey(_) => {
                "convert the key to PKCS#8: `openssl pkcs8 -topk8 -nocrypt -in key.pem`"
            }
            _ => {
                "give the certificate in PEM followed by its chain, and its unencrypted key in PEM"
            }
        }
    }
}

/// Reads and checks a certificate chain and its key, as of `now` (unix seconds).
pub fn inspect(chain: &str, key: &str, now: i64) -> Result<CertificateInfo, CertificateError> {
    let pems = certificate_blocks(chain)?;
    let mut certificates = Vec::with_capacity(pems.len());
    for (index, pem) in pems.iter().enumerate() {
        let certificate = pem
            .parse_x509()
            .map_err(|error| CertificateError::Unreadable {
                position: index + 1,
                reason: error.to_string(),
            })?;
        certificates.push(certificate);
    }
    check_chain(&certificates, now)?;
    let leaf = &certificates[0];
    if public_key_of(key)? != leaf.public_key().subject_public_key.data.as_ref() {
        return Err(CertificateError::KeyMismatch);
    }
    Ok(describe(leaf, &pems[0].contents))
}

/// The names, issuer, expiry and fingerprint of a certificate chain's leaf, unchecked.
pub fn describe_chain(chain: &str) -> Result<CertificateInfo, CertificateError> {
    let pems = certificate_blocks(chain)?;
    let leaf = pems[0]
        .parse_x509()
        .map_err(|error| CertificateError::Unreadable {
            position: 1,
            reason: error.to_string(),
        })?;
    Ok(describe(&leaf, &pems[0].contents))
}

fn certificate_blocks(chain: &str) -> Result<Vec<Pem>, CertificateError> {
    let pems: Vec<Pem> = Pem::iter_from_buffer(chain.as_bytes())
        .filter_map(Result::ok)
        .filter(|pem| pem.label == "CERTIFICATE")
        .collect();
    if pems.is_empty() {
        return Err(CertificateError::NoCertificate);
    }
    Ok(pems)
}

fn describe(leaf: &X509Certificate, der: &[u8]) -> CertificateInfo {
    let mut names: Vec<String> = match leaf.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            leaf.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_lowercase),
        );
    }
    CertificateInfo {
        names,
        issuer: leaf.issuer().to_string(),
        not_after: leaf.validity().not_after.timestamp(),
        sha256: hex::encode(Sha256::digest(der)),
    }
}

/// Each certificate is unexpired and signed by the next one.
fn check_chain(certificates: &[X509Certificate], now: i64) -> Result<(), CertificateError> {
    for (index, certificate) in certificates.iter().enumerate() {
        let not_after = &certificate.validity().not_after;
        if not_after.timestamp() < now {
            return Err(CertificateError::Expired {
                position: index + 1,
                date: not_after.to_string(),
            });
        }
        let Some(next) = certificates.get(index + 1) else {
            break;
        };
        let signed = certificate.issuer() == next.subject()
            && certificate
                .verify_signature(Some(next.public_key()))
                .is_ok();
        if !signed {
            return Err(CertificateError::BrokenChain {
                position: index + 1,
                next: index + 2,
            });
        }
    }
    Ok(())
}

/// The public key of a PEM private key, as a certificate's `subjectPublicKey` holds it.
fn public_key_of(key: &str) -> Result<Vec<u8>, CertificateError> {
    use ring::signature::{self, KeyPair};
    let pem = Pem::iter_from_buffer(key.as_bytes())
        .filter_map(Result::ok)
        .find(|pem| pem.label.ends_with("PRIVATE KEY"))
        .ok_or(CertificateError::NoKey)?;
    let der = pem.contents.as_slice();
    let unreadable = |what: &str| CertificateError::UnreadableKey(what.to_owned());
    match pem.label.as_str() {
        "RSA PRIVATE KEY" => signature::RsaKeyPair::from_der(der)
            .map(|pair| pair.public_key().as_ref().to_vec())
            .map_err(|error| unreadable(&format!("not an RSA key ring accepts ({error})"))),
        "PRIVATE KEY" => {
            if let Ok(pair) = signature::RsaKeyPair::from_pkcs8(der) {
                return Ok(pair.public_key().as_ref().to_vec());
            }
            if let Ok(pair) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                return Ok(pair.public_key().as_ref().to_vec());
            }
            let random = ring::rand::SystemRandom::new();
            for algorithm in [
                &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            ] {
                if let Ok(pair) = signature::EcdsaKeyPair::from_pkcs8(algorithm, der, &random) {
                    return Ok(pair.public_key().as_ref().to_vec());
                }
            }
            Err(unreadable(
                "not an RSA, ECDSA P-256/P-384 or Ed25519 key in PKCS#8",
            ))
        }
        other => Err(unreadable(&format!(
            "`{other}` keys are not read; an unencrypted PKCS#8 key is"
        ))),
    }
}

#[cfg(test)]
mod tests;
