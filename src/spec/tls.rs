//! The `tls` section of a Site: HTTPS with a certificate from ACME (certbot on the server) or
//! from secret references, an HTTP → HTTPS redirect and HSTS.

use super::secret::SecretRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// HTTPS for the site. Give either `acme` or `certificate` and `key`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSpec {
    /// A certificate from an ACME CA (Let's Encrypt by default), obtained and renewed by
    /// `certbot` on the server in webroot mode: the private key never leaves the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<Acme>,
    /// The certificate in PEM, followed by its chain (a `fullchain.pem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<SecretRef>,
    /// The certificate's private key in PEM (PKCS#8 `PRIVATE KEY`, or `RSA PRIVATE KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretRef>,
    /// Redirect plain HTTP to HTTPS (ACME challenges are still answered on port 80).
    #[serde(default = "yes")]
    pub redirect: bool,
    /// Send `Strict-Transport-Security`; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<Hsts>,
}

fn yes() -> bool {
    true
}

/// An ACME account and CA.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Acme {
    /// The account's contact address (expiry notices from the CA).
    pub email: String,
    /// The CA's ACME directory URL; Let's Encrypt's production directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
}

/// Let's Encrypt's production ACME directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Acme {
    /// The directory URL certbot talks to.
    pub fn directory_url(&self) -> &str {
        self.directory.as_deref().unwrap_or(LETS_ENCRYPT)
    }
}

/// HTTP Strict Transport Security.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hsts {
    /// `max-age` in seconds (a year is 31536000).
    #[schemars(range(min = 0, max = 63072000))]
    pub max_age_seconds: u64,
    /// Add `includeSubDomains`.
    #[serde(default)]
    pub include_sub_domains: bool,
}

/// Where a certificate comes from, once the spec is valid.
#[derive(Clone, Debug, PartialEq)]
pub enum TlsSource<'a> {
    Acme(&'a Acme),
    Secrets {
        certificate: &'a SecretRef,
        key: &'a SecretRef,
    },
}

impl TlsSpec {
    /// The certificate's source; `None` when the spec gives neither or both (the checks say so).
    pub fn source(&self) -> Option<TlsSource<'_>> {
        match (&self.acme, &self.certificate, &self.key) {
            (Some(acme), None, None) => Some(TlsSource::Acme(acme)),
            (None, Some(certificate), Some(key)) => Some(TlsSource::Secrets { certificate, key }),
            _ => None,
        }
    }

    /// Every secret reference of the section.
    pub fn secret_references(&self) -> Vec<&SecretRef> {
        self.certificate.iter().chain(self.key.iter()).collect()
    }
}

/// A problem in a `tls` section, located by its pointer below `spec.tls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsProblem {
    /// Keys below `spec.tls`.
    pub pointer: Vec<&'static str>,
    /// Point at the key rather than its value.
    pub key: bool,
    pub message: String,
    pub hint: String,
}

fn problem(pointer: &[&'static str], key: bool, message: String, hint: &str) -> TlsProblem {
    TlsProblem {
        pointer: pointer.to_vec(),
        key,
        message,
        hint: hint.to_owned(),
    }
}

/// Every problem of a `tls` section for a site serving `names`.
pub fn problems(tls: &TlsSpec, names: &[&str]) -> Vec<TlsProblem> {
    let mut out = Vec::new();
    match (&tls.acme, &tls.certificate, &tls.key) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
            let field = if tls.certificate.is_some() {
                "certificate"
            } else {
                "key"
            };
            out.push(problem(
                &[field],
                true,
                format!("`tls` holds both `acme` and `{field}`: a certificate comes from one place"),
                "keep `acme` for certbot on the server, or `certificate` and `key` from secrets, not both",
            ));
        }
        (None, None, None) => out.push(problem(
            &[],
            false,
            "`tls` names no certificate".into(),
            "add `acme: {email: you@example.com}`, or `certificate` and `key` as secret references",
        )),
        (None, Some(_), None) => out.push(problem(
            &["certificate"],
            true,
            "`tls` has a `certificate` but no `key`".into(),
            "add `key: {secret: …}`: the private key that goes with the certificate",
        )),
        (None, None, Some(_)) => out.push(problem(
            &["key"],
            true,
            "`tls` has a `key` but no `certificate`".into(),
            "add `certificate: {secret: …}`: the certificate in PEM, followed by its chain",
        )),
        _ => {}
    }
    if let Some(acme) = &tls.acme {
        out.extend(acme_problems(acme, names));
    }
    out
}

fn acme_problems(acme: &Acme, names: &[&str]) -> Vec<TlsProblem> {
    let mut out = Vec::new();
    if let Err(why) = check_email(&acme.email) {
        out.push(problem(
            &["acme", "email"],
            false,
            format!("`{}` is not an email address: {why}", acme.email),
            "write the address the CA sends expiry notices to, like `ops@example.com`",
        ));
    }
    if let Some(directory) = &acme.directory
        && (!directory.starts_with("https://")
            || directory.len() <= "https://".len()
            || directory
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()))
    {
        out.push(problem(
            &["acme", "directory"],
            false,
            format!("`{directory}` is not an https URL of an ACME directory"),
            "ACME directories are served over HTTPS, like `https://acme-v02.api.letsencrypt.org/directory`",
        ));
    }
    for name in names {
        let why = if name.starts_with("*.") {
            "a wildcard needs a DNS challenge, and certbot on the server answers HTTP ones"
        } else if name.parse::<std::net::IpAddr>().is_ok() {
            "ACME CAs issue certificates for host names, not IP addresses"
        } else {
            continue;
        };
        out.push(problem(
            &["acme"],
            true,
            format!("`{name}` cannot get a certificate from ACME: {why}"),
            "give such names a certificate from secrets (`certificate` and `key`)",
        ));
    }
    out
}

/// Checks an email address the way a CA does, roughly: `local@domain.tld`.
pub fn check_email(email: &str) -> Result<(), String> {
    let Some((local, domain)) = email.split_once('@') else {
        return Err("it has no `@`".into());
    };
    if local.is_empty() {
        return Err("nothing before the `@`".into());
    }
    if local
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "@,;<>\"()[]\\".contains(c))
    {
        return Err("the part before the `@` holds a space or a special character".into());
    }
    if !domain.contains('.') {
        return Err(format!("`{domain}` is not a domain with a dot"));
    }
    super::checks::check_host(domain).map_err(|why| format!("the domain {why}"))?;
    if domain.parse::<std::net::IpAddr>().is_ok() {
        return Err("the domain is an IP address".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> Option<SecretRef> {
        Some(SecretRef {
            secret: format!("env:{name}"),
        })
    }

    fn acme(email: &str) -> Option<Acme> {
        Some(Acme {
            email: email.into(),
            directory: None,
        })
    }

    fn tls() -> TlsSpec {
        TlsSpec {
            acme: None,
            certificate: None,
            key: None,
            redirect: true,
            hsts: None,
        }
    }

    fn messages(tls: &TlsSpec, names: &[&str]) -> Vec<String> {
        problems(tls, names)
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn acme_alone_or_a_certificate_with_its_key_is_valid() {
        let by_acme = TlsSpec {
            acme: acme("ops@example.com"),
            ..tls()
        };
        assert_eq!(
            messages(&by_acme, &["shop.example.com"]),
            Vec::<String>::new()
        );
        assert!(matches!(by_acme.source(), Some(TlsSource::Acme(_))));
        let by_secrets = TlsSpec {
            certificate: reference("CERT"),
            key: reference("KEY"),
            ..tls()
        };
        assert!(problems(&by_secrets, &["*.example.com"]).is_empty());
        assert!(matches!(
            by_secrets.source(),
            Some(TlsSource::Secrets { .. })
        ));
    }

    #[test]
    fn both_kinds_at_once_are_refused_at_the_certificate() {
        let both = TlsSpec {
            acme: acme("ops@example.com"),
            certificate: reference("CERT"),
            key: reference("KEY"),
            ..tls()
        };
        let found = problems(&both, &["shop.example.com"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pointer, vec!["certificate"]);
        assert!(found[0].message.contains("both `acme` and `certificate`"));
        assert_eq!(both.source(), None);
    }

    #[test]
    fn a_certificate_without_its_key_and_an_empty_section_are_refused() {
        let lone = TlsSpec {
            certificate: reference("CERT"),
            ..tls()
        };
        assert_eq!(
            messages(&lone, &["a.example.com"]),
            vec!["`tls` has a `certificate` but no `key`"]
        );
        assert_eq!(
            messages(&tls(), &["a.example.com"]),
            vec!["`tls` names no certificate"]
        );
    }

    #[test]
    fn a_bad_email_a_plain_http_directory_and_a_wildcard_are_named() {
        let bad = TlsSpec {
            acme: Some(Acme {
                email: "ops at example".into(),
                directory: Some("http://ca.example/dir".into()),
            }),
            ..tls()
        };
        let found = problems(&bad, &["shop.example.com", "*.shop.example.com"]);
        let pointers: Vec<Vec<&str>> = found.iter().map(|p| p.pointer.clone()).collect();
        assert_eq!(
            pointers,
            vec![
                vec!["acme", "email"],
                vec!["acme", "directory"],
                vec!["acme"]
            ]
        );
        assert!(found[0].message.contains("no `@`"), "{found:?}");
        assert!(found[2].message.contains("wildcard"), "{found:?}");
    }

    #[test]
    fn email_addresses_need_a_local_part_and_a_dotted_domain() {
        assert!(check_email("ops@example.com").is_ok());
        assert!(check_email("ops+tls@mail.example.co.uk").is_ok());
        assert!(check_email("@example.com").is_err());
        assert!(check_email("ops@localhost").is_err());
        assert!(check_email("o ps@example.com").is_err());
        assert!(check_email("ops@exa mple.com").is_err());
        assert!(check_email("ops@10.0.0.1").is_err());
    }
}
