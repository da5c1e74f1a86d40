//! HTTPS of a site: the shared TLS snippet, its certificate (from ACME through certbot on the
//! server, or from secrets) and the renewal cron file; and the vhost's TLS parts.

use super::certificate::{self, CertificateError, CertificateInfo};
use super::desired::DesiredSite;
use super::file::{ManagedFile, removal, sha256_hex};
use crate::layout;
use crate::observe::{ObservedCertificate, ObservedSite};
use crate::plan::step::{IssueStep, Reload};
use crate::plan::{Action, Change, ResourceKind, Step};
use crate::spec::secret::{ResolvedSecrets, SecretRef};
use crate::spec::tls::{Acme, TlsSource, TlsSpec};

/// A certificate with fewer days left than this is issued again (as certbot renews).
pub const RENEW_DAYS: i64 = 30;

/// Mozilla's "intermediate" configuration (TLS 1.2 and 1.3), shared by every site's vhost.
pub const SNIPPET: &str = "# Managed by siteward: edits here are overwritten by the next apply.\n\
# Mozilla's \"intermediate\" TLS settings, included by every HTTPS vhost siteward writes.\n\
ssl_protocols TLSv1.2 TLSv1.3;\n\
ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;\n\
ssl_prefer_server_ciphers off;\n\
ssl_session_timeout 1d;\n\
ssl_session_cache shared:SitewardTLS:10m;\n\
ssl_session_tickets off;\n";

/// The port-80 location that answers ACME HTTP-01 challenges from certbot's webroot.
pub fn challenge_location() -> String {
    format!(
        "    location ^~ /.well-known/acme-challenge/ {{\n        root {};\n        default_type text/plain;\n    }}\n\n",
        layout::ACME_WEBROOT
    )
}

/// certbot's deploy hook: nginx loads a renewed certificate once its configuration tests good.
pub const DEPLOY_HOOK: &str = "nginx -t -q && nginx -s reload";

/// Where nginx reads the site's certificate chain and key.
pub fn certificate_paths(site: &str, tls: &TlsSpec) -> (String, String) {
    let dir = match tls.source() {
        Some(TlsSource::Acme(_)) => layout::acme_live_dir(site),
        _ => layout::tls_dir(site),
    };
    (format!("{dir}/fullchain.pem"), format!("{dir}/privkey.pem"))
}

/// The lines of the HTTPS server block that name the certificate, the snippet and HSTS.
pub fn server_lines(site: &str, tls: &TlsSpec) -> String {
    let (chain, key) = certificate_paths(site, tls);
    let mut out = format!(
        "    ssl_certificate {chain};\n    ssl_certificate_key {key};\n    include {};\n",
        layout::TLS_SNIPPET
    );
    if let Some(hsts) = &tls.hsts {
        let sub_domains = if hsts.include_sub_domains {
            "; includeSubDomains"
        } else {
            ""
        };
        out.push_str(&format!(
            "    add_header Strict-Transport-Security \"max-age={}{sub_domains}\" always;\n",
            hsts.max_age_seconds
        ));
    }
    out.push('\n');
    out
}

fn snippet_file() -> ManagedFile {
    ManagedFile::system(layout::TLS_SNIPPET.into(), SNIPPET.into(), Reload::Nginx)
}

fn cron_file(site: &str) -> ManagedFile {
    let minute = site.bytes().fold(2166136261u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(16777619)
    }) % 60;
    let content = format!(
        "# Managed by siteward: edits here are overwritten by the next apply.\n\
         # Renews the ACME certificate of site {site} when fewer than {RENEW_DAYS} days remain, whether\n\
         # siteward runs or not; certbot's deploy hook reloads nginx.\n\
         SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         {minute} 3,15 * * * root certbot renew --cert-name {site} --quiet\n"
    );
    ManagedFile::system(layout::tls_cron_path(site), content, Reload::Nothing)
}

/// Whether the certificate the vhost names is on the server already: then the vhost may be
/// written before the certificate changes; otherwise after.
pub fn certificate_present(desired: &DesiredSite, observed: &ObservedSite) -> bool {
    let Some(tls) = desired.tls else {
        return true;
    };
    match tls.source() {
        Some(TlsSource::Acme(_)) => observed.certificates.contains_key("acme"),
        _ => {
            let (chain, key) = certificate_paths(desired.name, tls);
            observed.files.contains_key(&chain) && observed.files.contains_key(&key)
        }
    }
}

/// The snippet's change; `None` when the site has no HTTPS (the snippet is shared: never removed).
pub fn diff_snippet(desired: &DesiredSite, observed: &ObservedSite) -> Option<Change> {
    desired.tls?;
    let file = snippet_file();
    Some(file.diff(ResourceKind::Tls, &file.path, observed))
}

/// # Guarantees
/// A certificate from secrets is written (key 0600, over stdin) only when its hash or modes
/// differ, and nginx reloads after `nginx -t`. An ACME certificate is issued only when there is
/// none, its names differ from the spec's or fewer than 30 days remain; its renewal cron file
/// is written only when it differs. A site without `tls` loses siteward's files of it (certbot's
/// lineage stays).
pub fn diff(
    desired: &DesiredSite,
    observed: &ObservedSite,
    secrets: &ResolvedSecrets,
    now: i64,
) -> Vec<Change> {
    let site = desired.name;
    let cron = cron_file(site);
    let Some(source) = desired.tls.and_then(TlsSpec::source) else {
        return removals(site, observed, true, true);
    };
    match source {
        TlsSource::Acme(acme) => {
            let mut out = vec![acme_change(desired, acme, observed, now)];
            out.push(cron.diff(ResourceKind::Tls, &cron.path, observed));
            out.extend(removals(site, observed, false, true));
            out
        }
        TlsSource::Secrets { certificate, key } => {
            let mut out = vec![secrets_change(
                desired,
                (certificate, key),
                observed,
                secrets,
                now,
            )];
            out.extend(removals(site, observed, true, false));
            out
        }
    }
}

/// The names the certificate must cover: the domain and the aliases, lower case.
pub fn wanted_names(desired: &DesiredSite) -> Vec<String> {
    let spec = &desired.site.spec;
    let mut names: Vec<String> = std::iter::once(&spec.domain)
        .chain(spec.aliases.iter())
        .map(|n| n.to_lowercase())
        .collect();
    names.dedup();
    names
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    names
}

/// A date for people: `2027-03-01`.
pub fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| unix.to_string())
}

fn acme_change(desired: &DesiredSite, acme: &Acme, observed: &ObservedSite, now: i64) -> Change {
    let names = wanted_names(desired);
    let label = names.join(", ");
    let issue = Step::IssueCertificate(Box::new(IssueStep {
        site: desired.name.to_owned(),
        names: names.clone(),
        email: acme.email.clone(),
        directory: acme.directory_url().to_owned(),
        webroot: layout::ACME_WEBROOT.to_owned(),
    }));
    let Some(current) = observed.certificates.get("acme") else {
        let reason = format!(
            "no certificate yet: certbot asks {} for {label} (HTTP-01 on port 80)",
            acme.directory_url()
        );
        let interim = interim_vhost(desired);
        return Change::new(ResourceKind::Tls, &label, Action::Create, reason)
            .step(interim.write_step())
            .step(issue);
    };
    match acme_reason(current, &names, now) {
        Some(reason) => Change::new(ResourceKind::Tls, &label, Action::Update, reason).step(issue),
        None => Change::new(
            ResourceKind::Tls,
            &label,
            Action::NoOp,
            describe(&current.names, &current.issuer, current.not_after, now),
        ),
    }
}

/// Why an ACME certificate on the server must be issued again, if it must.
fn acme_reason(current: &ObservedCertificate, names: &[String], now: i64) -> Option<String> {
    if sorted(&current.names) != sorted(names) {
        return Some(format!(
            "the certificate is for {}, the spec names {}: issue it again",
            current.names.join(", "),
            names.join(", ")
        ));
    }
    let left = (current.not_after - now) / 86400;
    (current.not_after - now < RENEW_DAYS * 86400).then(|| {
        format!(
            "the certificate expires on {} (in {left} days): fewer than {RENEW_DAYS} remain, renew it",
            date(current.not_after)
        )
    })
}

/// `for a.test, www.a.test, issued by CN=…, expires on 2027-03-01 (in 89 days)`.
pub fn describe(names: &[String], issuer: &str, not_after: i64, now: i64) -> String {
    format!(
        "for {}, issued by {issuer}, expires on {} (in {} days)",
        names.join(", "),
        date(not_after),
        (not_after - now) / 86400
    )
}

/// The site's vhost on port 80 only, answering ACME challenges: what serves while its first
/// certificate is issued.
pub fn interim_vhost(desired: &DesiredSite) -> ManagedFile {
    let mut file = super::web::vhost_file(desired);
    file.content = super::web::render_vhost(desired, super::web::VhostForm::Interim);
    file
}

/// PEM text as written on the server: the secret's text with one final newline.
fn pem_text(value: &str) -> String {
    format!("{}\n", value.trim_end())
}

fn secrets_change(
    desired: &DesiredSite,
    (certificate, key): (&SecretRef, &SecretRef),
    observed: &ObservedSite,
    secrets: &ResolvedSecrets,
    now: i64,
) -> Change {
    let (chain_path, key_path) = certificate_paths(desired.name, desired.tls.expect("tls"));
    let chain = secrets.get(certificate).map(|s| pem_text(s.expose()));
    let key_text = secrets.get(key).map(|s| pem_text(s.expose()));
    let label = chain
        .as_deref()
        .and_then(|c| certificate::describe_chain(c).ok())
        .map_or_else(
            || chain_path.clone(),
            |info| describe(&info.names, &info.issuer, info.not_after, now),
        );
    let name = wanted_names(desired).join(", ");
    let step = Step::WriteCertificate {
        directory: layout::tls_dir(desired.name),
        certificate: certificate.clone(),
        key: key.clone(),
    };
    let wanted = [
        (&chain_path, chain.as_deref(), 0o644),
        (&key_path, key_text.as_deref(), 0o600),
    ];
    let mut reasons = Vec::new();
    for (path, text, mode) in wanted {
        let Some(file) = observed.files.get(path.as_str()) else {
            reasons.push(format!("{path} does not exist"));
            continue;
        };
        if Some(file.sha256.as_str()) != text.map(|t| sha256_hex(t.as_bytes())).as_deref() {
            reasons.push(format!("{path} differs from the spec's secret"));
        } else if file.mode != mode || file.owner != "root" {
            reasons.push(format!(
                "{path} is {}:{} {:04o}, want root:root {mode:04o}",
                file.owner, file.group, file.mode
            ));
        }
    }
    if reasons.is_empty() && observed.unloaded.contains(&chain_path) {
        reasons.push(format!(
            "{chain_path} is written but nginx has not loaded it"
        ));
    }
    if reasons.is_empty() {
        return Change::new(ResourceKind::Tls, name, Action::NoOp, label);
    }
    let action = if observed.files.contains_key(&chain_path) {
        Action::Update
    } else {
        Action::Create
    };
    let reason = format!("certificate {label}: {}", reasons.join("; "));
    Change::new(ResourceKind::Tls, name, action, reason).step(step)
}

/// What a server holds of a site's TLS that the spec no longer wants.
fn removals(site: &str, observed: &ObservedSite, cron: bool, files: bool) -> Vec<Change> {
    let dir = layout::tls_dir(site);
    let mut paths = Vec::new();
    if cron {
        paths.push(layout::tls_cron_path(site));
    }
    if files {
        paths.push(format!("{dir}/fullchain.pem"));
        paths.push(format!("{dir}/privkey.pem"));
    }
    paths
        .iter()
        .filter_map(|path| removal(ResourceKind::Tls, path, path, observed, Reload::Nothing))
        .map(|mut change| {
            change.diff = None;
            change
        })
        .collect()
}

/// Why a site's certificate and key from secrets cannot be served, in the words of the plan;
/// `None` when they can (or the site takes its certificate from ACME).
pub fn refusal(
    tls: &TlsSpec,
    secrets: &ResolvedSecrets,
    now: i64,
) -> Option<(String, CertificateError)> {
    let Some(TlsSource::Secrets { certificate, key }) = tls.source() else {
        return None;
    };
    let (chain, key_text) = (secrets.get(certificate)?, secrets.get(key)?);
    let error = certificate::inspect(chain.expose(), key_text.expose(), now).err()?;
    Some((
        format!("tls: the certificate {certificate} with the key {key} is refused: {error}"),
        error,
    ))
}

/// The certificate's facts when it comes from secrets and reads well.
pub fn secrets_info(tls: &TlsSpec, secrets: &ResolvedSecrets) -> Option<CertificateInfo> {
    let Some(TlsSource::Secrets { certificate, .. }) = tls.source() else {
        return None;
    };
    certificate::describe_chain(secrets.get(certificate)?.expose()).ok()
}

#[cfg(test)]
mod tests;
