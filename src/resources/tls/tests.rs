use super::*;
use crate::observe::ObservedFile;
use crate::resources::web::{VhostForm, render_vhost};
use crate::spec::secret::Secret;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86400;

fn site(tls: &str) -> crate::spec::Site {
    let text = format!(
        "apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {{name: a}}\nspec: {{address: 192.0.2.1, php: [\"8.2\"]}}\n---\n\
         apiVersion: siteward.dev/v1\nkind: Site\nmetadata: {{name: shop}}\n\
         spec: {{server: a, type: php, domain: shop.test, aliases: [www.shop.test], user: shop, php: \"8.2\", tls: {tls}}}\n"
    );
    crate::spec::first_site_of(&text)
}

const ACME: &str = "{acme: {email: ops@example.com, directory: \"https://ca.test/dir\"}, hsts: {maxAgeSeconds: 600}}";
const SECRETS: &str = "{certificate: {secret: env:CERT}, key: {secret: env:KEY}, redirect: false}";

fn certificate(names: &[&str], not_after: i64) -> ObservedCertificate {
    ObservedCertificate {
        names: names.iter().map(|n| n.to_string()).collect(),
        issuer: "CN=Pebble".into(),
        not_after,
        sha256: "ab".repeat(32),
    }
}

fn with_acme(observed: ObservedCertificate) -> ObservedSite {
    let mut site = ObservedSite::default();
    site.certificates.insert("acme".into(), observed);
    site
}

fn acme_actions(observed: &ObservedSite) -> (Action, String, Vec<Step>) {
    let site = site(ACME);
    let desired = DesiredSite::new(&site);
    let change = diff(&desired, observed, &ResolvedSecrets::default(), NOW).remove(0);
    (change.action, change.reason, change.steps)
}

#[test]
fn a_first_acme_certificate_serves_challenges_on_port_80_then_issues() {
    let (action, reason, steps) = acme_actions(&ObservedSite::default());
    assert_eq!(action, Action::Create);
    assert!(
        reason.contains("certbot asks https://ca.test/dir for shop.test, www.shop.test"),
        "{reason}"
    );
    let Step::WriteFile { content, .. } = &steps[0] else {
        panic!("{steps:?}")
    };
    assert!(
        content.contains("acme-challenge") && !content.contains("443"),
        "{content}"
    );
    let Step::IssueCertificate(issue) = &steps[1] else {
        panic!("{steps:?}")
    };
    assert_eq!(issue.names, vec!["shop.test", "www.shop.test"]);
    assert_eq!(issue.email, "ops@example.com");
}

#[test]
fn an_acme_certificate_with_time_left_and_the_same_names_is_kept() {
    let observed = with_acme(certificate(&["www.shop.test", "shop.test"], NOW + 60 * DAY));
    let (action, reason, steps) = acme_actions(&observed);
    assert_eq!(action, Action::NoOp, "{reason}");
    assert!(steps.is_empty());
}

#[test]
fn an_added_alias_or_fewer_than_30_days_issue_again() {
    let (action, reason, _) = acme_actions(&with_acme(certificate(&["shop.test"], NOW + 60 * DAY)));
    assert_eq!(action, Action::Update);
    assert!(
        reason.contains("the spec names shop.test, www.shop.test"),
        "{reason}"
    );
    let expiring = certificate(&["shop.test", "www.shop.test"], NOW + 29 * DAY);
    let (action, reason, steps) = acme_actions(&with_acme(expiring));
    assert_eq!(action, Action::Update);
    assert!(
        reason.contains("(in 29 days): fewer than 30 remain"),
        "{reason}"
    );
    assert!(
        matches!(steps[..], [Step::IssueCertificate(_)]),
        "{steps:?}"
    );
}

#[test]
fn the_wanted_vhost_redirects_port_80_and_serves_443_with_the_snippet_and_hsts() {
    let site = site(ACME);
    let vhost = render_vhost(&DesiredSite::new(&site), VhostForm::Wanted);
    let (http, https) = vhost.split_once("\n}\n\n").expect("two server blocks");
    assert!(http.contains("listen 80;") && http.contains("return 301 https://$host$request_uri;"));
    assert!(
        http.contains("location ^~ /.well-known/acme-challenge/"),
        "{http}"
    );
    assert!(https.contains("listen 443 ssl http2;"), "{https}");
    assert!(https.contains("ssl_certificate /etc/letsencrypt/live/shop/fullchain.pem;"));
    assert!(https.contains("include /etc/nginx/snippets/siteward-tls.conf;"));
    assert!(https.contains("add_header Strict-Transport-Security \"max-age=600\" always;"));
    assert!(https.contains("fastcgi_pass unix:/run/php/siteward-shop.sock;"));
}

#[test]
fn without_the_redirect_one_server_block_listens_on_both_ports() {
    let site = site(SECRETS);
    let vhost = render_vhost(&DesiredSite::new(&site), VhostForm::Wanted);
    assert_eq!(vhost.matches("server {").count(), 1, "{vhost}");
    assert!(vhost.contains("listen 80;\n    listen 443 ssl http2;"));
    assert!(vhost.contains("ssl_certificate_key /etc/siteward/tls/shop/privkey.pem;"));
    assert!(!vhost.contains("acme-challenge") && !vhost.contains("Strict-Transport"));
}

fn secrets(chain: &str, key: &str) -> ResolvedSecrets {
    let mut out = ResolvedSecrets::default();
    for (name, value) in [("env:CERT", chain), ("env:KEY", key)] {
        let reference = SecretRef {
            secret: name.into(),
        };
        out.insert(&reference, Secret::new(value.into()));
    }
    out
}

fn holding(path: &str, text: &str, mode: u32) -> ObservedFile {
    let _ = path;
    ObservedFile {
        sha256: sha256_hex(text.as_bytes()),
        owner: "root".into(),
        group: "root".into(),
        mode,
        content: None,
    }
}

#[test]
fn a_certificate_from_secrets_is_written_once_and_compared_by_hash() {
    let chain = include_str!("../../../tests/fixtures/tls/fullchain.pem");
    let key = include_str!("../../../tests/fixtures/tls/leaf.key");
    let site = site(SECRETS);
    let desired = DesiredSite::new(&site);
    let resolved = secrets(chain, key);
    let first = diff(&desired, &ObservedSite::default(), &resolved, NOW).remove(0);
    assert_eq!(first.action, Action::Create);
    assert!(
        first
            .reason
            .contains("for a.test, www.a.test, issued by CN=siteward test CA"),
        "{}",
        first.reason
    );
    assert!(!first.reason.contains("PRIVATE"), "{}", first.reason);
    let json = serde_json::to_string(&first).unwrap();
    assert!(
        !json.contains(key.lines().nth(1).unwrap()),
        "the plan holds no key: {json}"
    );
    let mut observed = ObservedSite::default();
    let dir = layout::tls_dir("shop");
    observed.files.insert(
        format!("{dir}/fullchain.pem"),
        holding("", &pem_text(chain), 0o644),
    );
    observed.files.insert(
        format!("{dir}/privkey.pem"),
        holding("", &pem_text(key), 0o600),
    );
    let again = diff(&desired, &observed, &resolved, NOW).remove(0);
    assert_eq!(again.action, Action::NoOp, "{}", again.reason);
    observed
        .files
        .get_mut(&format!("{dir}/privkey.pem"))
        .unwrap()
        .mode = 0o644;
    let loose = diff(&desired, &observed, &resolved, NOW).remove(0);
    assert!(
        loose.reason.contains("want root:root 0600"),
        "{}",
        loose.reason
    );
}

#[test]
fn a_key_of_another_certificate_is_a_refusal_that_names_both_references() {
    let site = site(SECRETS);
    let chain = include_str!("../../../tests/fixtures/tls/fullchain.pem");
    let other = include_str!("../../../tests/fixtures/tls/other.key");
    let tls = site.spec.tls.as_ref().unwrap();
    let (message, error) = refusal(tls, &secrets(chain, other), NOW).expect("refused");
    assert_eq!(error, CertificateError::KeyMismatch);
    assert!(
        message.contains("{secret: env:CERT} with the key {secret: env:KEY}"),
        "{message}"
    );
    let key = include_str!("../../../tests/fixtures/tls/leaf.key");
    assert!(refusal(tls, &secrets(chain, key), NOW).is_none());
}

#[test]
fn a_site_without_tls_loses_its_certificate_files_and_renewal_cron() {
    let text = "apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {name: a}\nspec: {address: 192.0.2.1}\n---\n\
        apiVersion: siteward.dev/v1\nkind: Site\nmetadata: {name: shop}\nspec: {server: a, type: static, domain: shop.test, user: shop}\n";
    let site = crate::spec::first_site_of(text);
    let desired = DesiredSite::new(&site);
    let mut observed = ObservedSite::default();
    observed
        .files
        .insert(layout::tls_cron_path("shop"), holding("", "x", 0o644));
    observed.files.insert(
        format!("{}/privkey.pem", layout::tls_dir("shop")),
        holding("", "k", 0o600),
    );
    let changes = diff(&desired, &observed, &ResolvedSecrets::default(), NOW);
    let removed: Vec<(&str, Action)> = changes
        .iter()
        .map(|c| (c.name.as_str(), c.action))
        .collect();
    assert_eq!(
        removed,
        vec![
            ("/etc/cron.d/siteward-tls_shop", Action::Delete),
            ("/etc/siteward/tls/shop/privkey.pem", Action::Delete)
        ]
    );
    assert!(changes.iter().all(|c| c.diff.is_none()));
    assert!(diff_snippet(&desired, &observed).is_none());
}
