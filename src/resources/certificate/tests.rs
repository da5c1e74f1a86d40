//! Certificates made once with openssl for these tests (tests/fixtures/tls): a CA, a leaf for
//! `a.test` and `www.a.test` with an ECDSA key, an RSA leaf for `r.test`, another CA and key.

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/tls/", $name))
    };
}

const NOW: i64 = 1_800_000_000;

#[test]
fn a_chain_and_its_key_give_the_names_issuer_and_expiry() {
    let info = inspect(fixture!("fullchain.pem"), fixture!("leaf.key"), NOW).unwrap();
    assert_eq!(info.names, vec!["a.test", "www.a.test"]);
    assert_eq!(info.issuer, "CN=siteward test CA");
    assert!(info.not_after > NOW + 50 * 365 * 86400, "{info:?}");
    assert_eq!(info.sha256.len(), 64);
}

#[test]
fn rsa_keys_in_pkcs8_and_pkcs1_match_their_certificate() {
    let chain = fixture!("rsa-fullchain.pem");
    for key in [fixture!("rsa.key"), fixture!("rsa-pkcs1.key")] {
        let info = inspect(chain, key, NOW).unwrap();
        assert_eq!(info.names, vec!["r.test"], "the common name, without SANs");
    }
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let error = inspect(fixture!("fullchain.pem"), fixture!("other.key"), NOW).unwrap_err();
    assert_eq!(error, CertificateError::KeyMismatch);
    let rsa = inspect(fixture!("fullchain.pem"), fixture!("rsa.key"), NOW).unwrap_err();
    assert_eq!(rsa, CertificateError::KeyMismatch);
}

#[test]
fn a_chain_whose_intermediate_did_not_sign_the_leaf_is_refused() {
    let error = inspect(fixture!("broken-chain.pem"), fixture!("leaf.key"), NOW).unwrap_err();
    assert_eq!(
        error,
        CertificateError::BrokenChain {
            position: 1,
            next: 2
        }
    );
}

#[test]
fn an_expired_certificate_is_refused_with_its_date() {
    let info = describe_chain(fixture!("leaf.pem")).unwrap();
    let error = inspect(
        fixture!("fullchain.pem"),
        fixture!("leaf.key"),
        info.not_after + 1,
    )
    .unwrap_err();
    assert!(
        matches!(&error, CertificateError::Expired { position: 1, date } if date.contains("2126")),
        "{error:?}"
    );
}

#[test]
fn text_without_pem_blocks_is_refused() {
    assert_eq!(
        inspect("hello", fixture!("leaf.key"), NOW).unwrap_err(),
        CertificateError::NoCertificate
    );
    assert_eq!(
        inspect(fixture!("fullchain.pem"), "not a key", NOW).unwrap_err(),
        CertificateError::NoKey
    );
}
