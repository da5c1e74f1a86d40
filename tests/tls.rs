//! HTTPS against real servers: certificates from secrets written over stdin and served by the
//! hosts' nginx, and certificates from a real ACME CA (pebble, started here) obtained and
//! renewed by certbot on the hosts. Requests come from the machine with SNI (curl `--resolve`,
//! `openssl s_client`), trusting only the test's CA or pebble's root.
//!
//! Hosts: `t-tls-a` (certificates from secrets), `t-tls-b` (ACME), `t-tls-c` (renewal near
//! expiry), `t-tls-d` and `t-tls-e` (a migration's source and target).

mod support;

use anyhow::{Result, ensure};
use support::Fleet;
use support::site::{Shape, SiteUnderTest as Site, site_spec};
use support::tls::{
    Pebble, TestCa, http_head, https_get, served_certificate, served_certificate_other_than,
};

/// Writes the site's spec (a Laravel site following `main`) with `tls` appended.
fn write_with_tls(site: &Site, tls: &str) -> Result<()> {
    let shape = Shape {
        branch: "main",
        script: "php artisan migrate --force",
        keep: 3,
    };
    let text = format!("{}  tls:\n{tls}", site_spec(&site.name, &shape));
    site.workspace
        .write_spec(&format!("sites/{}.yaml", site.name), &text)
        .map(drop)
}

/// The second line of a PEM file: a piece of the key that must never show anywhere.
fn key_canary(key: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(key)?;
    Ok(text.lines().nth(1).unwrap_or_default().to_owned())
}

#[test]
fn a_certificate_from_secrets_serves_https_redirects_http_and_refuses_a_wrong_key() -> Result<()> {
    let host = Fleet::host("t-tls-a")?;
    let ca = TestCa::new("siteward test CA")?;
    let (chain, key) = ca.issue("tcustom", "DNS:tcustom.test,DNS:www.tcustom.test")?;
    let site = Site::following(&host, "tcustom", "main")?;
    host.exec("rm -rf /etc/siteward/tls/tcustom")?;
    let references = |chain: &std::path::Path, key: &std::path::Path| {
        format!(
            "    certificate: {{secret: \"file:{}\"}}\n    key: {{secret: \"file:{}\"}}\n    hsts: {{maxAgeSeconds: 300}}\n",
            chain.display(),
            key.display()
        )
    };
    write_with_tls(&site, &references(&chain, &key))?;
    let plan = site.siteward(&["plan"])?;
    plan.assert_success();
    ensure!(
        plan.stdout
            .contains("for tcustom.test, www.tcustom.test, issued by CN=siteward test CA"),
        "the plan shows the names and the issuer: {plan}"
    );
    // The key as PEM, and as the base64 it travels in on stdin: never a process's argument.
    let key_text = std::fs::read_to_string(&key)?;
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{}\n", key_text.trim_end()))
    };
    let patterns = format!("{}\n{}\n", key_canary(&key)?, &encoded[..48]);
    let watch = support::tls::CmdlineWatch::start(&host, &patterns)?;
    let apply = site.apply()?;
    watch.finish()?;
    apply.assert_success();

    let (status, body) = https_get(&host, "tcustom.test", "/", &ca.path("ca.pem"))?;
    ensure!(
        status == 200 && body.contains("\"version\""),
        "{status}: {body}"
    );
    let (status, location) = http_head(&host, "tcustom.test", "/up?x=1")?;
    ensure!(
        status == 301 && location == "https://tcustom.test/up?x=1",
        "HTTP redirects: {status} {location}"
    );
    let headers = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(ca.path("ca.pem"))
        .args(["--resolve", &format!("tcustom.test:443:{}", host.address)])
        .arg("https://tcustom.test/")
        .output()?;
    let headers = String::from_utf8_lossy(&headers.stdout).to_lowercase();
    ensure!(
        headers.contains("strict-transport-security: max-age=300"),
        "{headers}"
    );
    let modes = host.exec("stat -c '%n %U %a' /etc/siteward/tls/tcustom/fullchain.pem /etc/siteward/tls/tcustom/privkey.pem")?;
    ensure!(
        modes.contains("fullchain.pem root 644") && modes.contains("privkey.pem root 600"),
        "{modes}"
    );
    let served = served_certificate(&host, "www.tcustom.test")?;
    let again = site.apply()?;
    again.assert_success();
    ensure!(again.stdout.contains("No changes"), "second apply: {again}");

    // Drift by hand is found by hash and put back.
    host.exec("echo tampered >> /etc/siteward/tls/tcustom/privkey.pem")?;
    let pending = site.pending()?;
    ensure!(
        pending.iter().any(|(resource, _, _)| resource == "tls"),
        "{pending:?}"
    );
    site.apply()?.assert_success();

    // A key of another certificate is refused before anything changes.
    let (_, other_key) = ca.issue("tother", "DNS:tother.test")?;
    write_with_tls(&site, &references(&chain, &other_key))?;
    let refused = site.siteward(&["plan"])?;
    refused.assert_code(1);
    let wanted = format!(
        "with the key {{secret: file:{}}} is refused: the key does not match the certificate",
        other_key.display()
    );
    ensure!(
        refused.stdout.contains(&wanted) || refused.stderr.contains(&wanted),
        "{refused}"
    );
    let apply = site.apply()?;
    apply.assert_code(1);
    ensure!(
        served_certificate(&host, "tcustom.test")? == served,
        "still the same certificate"
    );

    // The key never shows: not in output, plans, the state store or any process's arguments.
    write_with_tls(&site, &references(&chain, &key))?;
    let canaries = [key_canary(&key)?, key_canary(&other_key)?];
    let json = site.siteward(&["plan", "--format", "json"])?;
    let report = site.siteward(&["report", "tcustom", "--format", "json"])?;
    let store = std::fs::read(site.workspace.root().join(".siteward/state.db"))?;
    for canary in &canaries {
        for text in [&apply.stdout, &apply.stderr, &json.stdout, &report.stdout] {
            ensure!(!text.contains(canary.as_str()), "the key shows: {text}");
        }
        let in_store = store.windows(canary.len()).any(|w| w == canary.as_bytes());
        ensure!(!in_store, "the key is in the state store");
    }
    Ok(())
}

/// What the daemon's probe sees of site `name`: its health check (asked over HTTPS for a site
/// with `tls`) and its certificates.
fn daemon_probe(site: &Site) -> Result<siteward::observe::ObservedSite> {
    let loaded = siteward::spec::load_and_check(&[site.workspace.specs_dir()]);
    ensure!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let server = loaded.servers[0].item.clone();
    let sites: Vec<&siteward::spec::Site> = loaded.sites.iter().map(|s| &s.item).collect();
    let request = siteward::observe::connect::probe_request_for(&loaded, "web", &sites, true);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let observed = runtime.block_on(async {
        let target = siteward::observe::target(&server, false);
        let session = siteward::transport::SshSession::connect(&target).await?;
        let secrets = siteward::spec::secret::ResolvedSecrets::default();
        let observed = siteward::observe::observe(&server, &session, &request, &secrets).await;
        session.close().await;
        anyhow::Ok(observed?)
    })?;
    observed
        .sites
        .get(&site.name)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{} not observed", site.name))
}

/// 90 days, as Let's Encrypt issues.
const NINETY_DAYS: u64 = 90 * 86400;

fn acme_section(pebble: &Pebble) -> String {
    format!(
        "    acme:\n      email: ops@example.com\n      directory: \"{}\"\n",
        pebble.directory
    )
}

/// The site's spec with `aliases` and an ACME `tls` section.
fn write_acme(site: &Site, pebble: &Pebble, aliases: &[&str]) -> Result<()> {
    write_with_tls(site, &acme_section(pebble))?;
    let path = site
        .workspace
        .specs_dir()
        .join(format!("sites/{}.yaml", site.name));
    let text = std::fs::read_to_string(&path)?;
    let domain = format!("  domain: {}.test\n", site.name);
    let with = format!("{domain}  aliases: [{}]\n", aliases.join(", "));
    std::fs::write(&path, text.replace(&domain, &with))?;
    Ok(())
}

/// Removes the site's certbot lineage and the accounts at this pebble (pebble forgets its
/// accounts when it stops, a real CA does not; other tests' pebbles listen on other ports).
fn clean_acme(host: &support::Host, name: &str, pebble: &Pebble) -> Result<()> {
    let netloc = pebble
        .directory
        .trim_start_matches("https://")
        .trim_end_matches("/dir");
    host.exec(&format!(
        "rm -rf /etc/letsencrypt/accounts/{netloc} /etc/letsencrypt/live/{name} /etc/letsencrypt/archive/{name} /etc/letsencrypt/renewal/{name}.conf /etc/cron.d/siteward-tls_{name}"
    ))
    .map(drop)
}

#[test]
fn an_acme_certificate_is_issued_by_certbot_served_kept_and_reissued_for_a_new_alias() -> Result<()>
{
    let host = Fleet::host("t-tls-b")?;
    let pebble = Pebble::start(&host, 1, NINETY_DAYS)?;
    let roots = pebble.roots()?;
    let site = Site::following(&host, "tacme", "main")?;
    clean_acme(&host, "tacme", &pebble)?;
    write_acme(&site, &pebble, &["www.tacme.test"])?;
    let plan = site.siteward(&["plan"])?;
    plan.assert_success();
    ensure!(
        plan.stdout.contains("no certificate yet: certbot asks"),
        "the plan says it issues: {plan}"
    );
    let apply = site.apply()?;
    ensure!(apply.success(), "{apply}\n{}", pebble.logs());
    for name in ["tacme.test", "www.tacme.test"] {
        let (status, body) = https_get(&host, name, "/", &roots)?;
        ensure!(
            status == 200 && body.contains("\"version\""),
            "{name}: {status} {body}"
        );
    }
    let (status, location) = http_head(&host, "tacme.test", "/")?;
    ensure!(
        status == 301 && location == "https://tacme.test/",
        "{status} {location}"
    );
    let again = site.apply()?;
    again.assert_success();
    ensure!(again.stdout.contains("No changes"), "second apply: {again}");
    let probed = daemon_probe(&site)?;
    let health = probed.health.clone();
    ensure!(
        health.as_ref().is_some_and(|h| h.ok && h.status == 200),
        "the daemon's health check answers over HTTPS: {health:?}"
    );
    let certificate = &probed.certificates["acme"];
    ensure!(
        certificate.names == ["tacme.test", "www.tacme.test"]
            && certificate.issuer.contains("Pebble"),
        "{certificate:?}"
    );
    let status = site.siteward(&["status", "tacme"])?;
    ensure!(
        status
            .stdout
            .contains("the certificate for tacme.test, www.tacme.test expires on"),
        "status shows the expiry: {status}"
    );

    // Renewal runs without siteward: certbot's lineage has the deploy hook, cron runs certbot.
    let renewal = host.read_file("/etc/letsencrypt/renewal/tacme.conf")?;
    ensure!(
        renewal.contains("renew_hook = nginx -t -q && nginx -s reload"),
        "{renewal}"
    );
    ensure!(renewal.contains("webroot"), "{renewal}");
    let cron = host.read_file("/etc/cron.d/siteward-tls_tacme")?;
    ensure!(
        cron.contains("root certbot renew --cert-name tacme --quiet"),
        "{cron}"
    );

    let (before, _) = served_certificate(&host, "tacme.test")?;
    write_acme(&site, &pebble, &["www.tacme.test", "shop.tacme.test"])?;
    let plan = site.siteward(&["plan"])?;
    ensure!(
        plan.stdout
            .contains("the spec names tacme.test, www.tacme.test, shop.tacme.test"),
        "an added alias reissues: {plan}"
    );
    let apply = site.apply()?;
    ensure!(apply.success(), "{apply}\n{}", pebble.logs());
    let (status, _) = https_get(&host, "shop.tacme.test", "/", &roots)?;
    ensure!(status == 200, "the new alias serves: {status}");
    let (after, _) = served_certificate(&host, "tacme.test")?;
    ensure!(after != before, "a new certificate is served");
    ensure!(site.apply()?.stdout.contains("No changes"));
    Ok(())
}

#[test]
fn a_certificate_near_expiry_is_renewed_by_the_server_and_by_siteward() -> Result<()> {
    let host = Fleet::host("t-tls-c")?;
    // A CA that issues for 20 days: every certificate is inside the 30 days of renewal.
    let pebble = Pebble::start(&host, 2, 20 * 86400)?;
    let site = Site::following(&host, "trenew", "main")?;
    clean_acme(&host, "trenew", &pebble)?;
    write_acme(&site, &pebble, &[])?;
    let apply = site.apply()?;
    ensure!(apply.success(), "{apply}\n{}", pebble.logs());
    let (first, _) = served_certificate(&host, "trenew.test")?;
    let plan = site.siteward(&["plan"])?;
    ensure!(
        plan.stdout.contains("fewer than 30 remain, renew it"),
        "the plan renews it: {plan}"
    );
    // What the server's cron runs, siteward not involved: certbot renews, its hook reloads nginx.
    // (The hosts share /var/lib/letsencrypt, and with it certbot's lock: wait for it.)
    host.exec(
        "for i in $(seq 60); do certbot renew --cert-name trenew --quiet --no-random-sleep-on-renew 2>/tmp/renew.err && exit 0; grep -q 'Another instance' /tmp/renew.err || break; sleep 1; done; cat /tmp/renew.err >&2; exit 1",
    )?;
    let renewed = served_certificate_other_than(&host, "trenew.test", &first)?;
    ensure!(
        renewed != first,
        "the server renewed and serves the new certificate"
    );
    let apply = site.apply()?;
    ensure!(apply.success(), "{apply}\n{}", pebble.logs());
    let (third, _) = served_certificate(&host, "trenew.test")?;
    ensure!(third != renewed, "siteward renewed it too");
    Ok(())
}

#[test]
fn a_migration_carries_the_acme_certificate_and_serves_it_on_the_target_before_the_cutover()
-> Result<()> {
    use support::migration::Move;
    use support::tls::CmdlineWatch;
    let site = Move::new("t-tls-d", "t-tls-e", "tmove", "mariadb")?;
    let pebble = Pebble::start(&site.a, 3, NINETY_DAYS)?;
    let roots = pebble.roots()?;
    for host in [&site.a, &site.b] {
        clean_acme(host, "tmove", &pebble)?;
    }
    let with_tls = |server: &str| -> Result<()> {
        site.place(server, "test", "keep")?;
        let path = site.workspace.specs_dir().join("sites/site.yaml");
        let text = std::fs::read_to_string(&path)? + "  tls:\n" + &acme_section(&pebble);
        std::fs::write(&path, text)?;
        Ok(())
    };
    with_tls("a")?;
    let apply = site.apply()?;
    ensure!(apply.success(), "{apply}\n{}", pebble.logs());
    let (on_a, _) = served_certificate(&site.a, "tmove.test")?;

    with_tls("b")?;
    let plan = site.siteward(&["plan"])?;
    ensure!(
        plan.stdout
            .contains("carried from `a` with certbot's lineage: for tmove.test"),
        "the plan carries the certificate: {plan}"
    );
    let key = site
        .a
        .read_file("/etc/letsencrypt/live/tmove/privkey.pem")?;
    let canary = key.lines().nth(1).unwrap_or_default().to_owned();
    let watches = [
        CmdlineWatch::start(&site.a, &canary)?,
        CmdlineWatch::start(&site.b, &canary)?,
    ];
    let apply = site.apply()?;
    for watch in watches {
        watch.finish()?;
    }
    ensure!(apply.success(), "{apply}\n{}", pebble.logs());
    let (on_b, until) = served_certificate(&site.b, "tmove.test")?;
    ensure!(on_b == on_a, "B serves A's certificate before the cutover");
    let (status, body) = https_get(&site.b, "tmove.test", "/", &roots)?;
    ensure!(
        status == 200 && body.contains("\"version\""),
        "{status} {body}"
    );
    let report = site.report()?.to_string();
    let until = until.split_whitespace().collect::<Vec<_>>().join(" ");
    ensure!(
        report.contains("the site's certificate is served for tmove.test (SNI)")
            && report.contains(&until)
            && report.contains("curl --resolve tmove.test:443:"),
        "the report checks HTTPS on B and says when it expires: {report}"
    );
    // B's certbot renews it: the lineage's settings and the account they name came along.
    let lineage = site.b.exec(
        "cd /etc/letsencrypt && account=$(sed -n 's/^account = //p' renewal/tmove.conf) && \
         find accounts -type d -name \"$account\" | grep -q . && readlink -f live/tmove/privkey.pem && stat -c %a archive \"$(readlink -f live/tmove/privkey.pem)\"",
    )?;
    ensure!(
        lineage.contains("/etc/letsencrypt/archive/tmove/privkey1.pem")
            && lineage.ends_with("700\n600\n"),
        "{lineage}"
    );
    let store = std::fs::read(site.workspace.root().join(".siteward/state.db"))?;
    ensure!(!store.windows(canary.len()).any(|w| w == canary.as_bytes()));
    for text in [&apply.stdout, &apply.stderr, &plan.stdout, &report] {
        ensure!(!text.contains(&canary), "the key shows: {text}");
    }
    Ok(())
}

#[test]
fn after_a_final_sync_the_new_server_serves_and_renews_the_certificate_and_the_old_one_stops()
-> Result<()> {
    use support::migration::Move;
    let site = Move::new("t-tls-d", "t-tls-e", "tfinal", "mariadb")?;
    let pebble = Pebble::start(&site.a, 4, NINETY_DAYS)?;
    for host in [&site.a, &site.b] {
        clean_acme(host, "tfinal", &pebble)?;
    }
    let place = |server: &str, mode: &str| -> Result<()> {
        site.place(server, mode, "stop")?;
        let path = site.workspace.specs_dir().join("sites/site.yaml");
        let text = std::fs::read_to_string(&path)? + "  tls:\n" + &acme_section(&pebble);
        std::fs::write(&path, text)?;
        Ok(())
    };
    place("a", "final-sync")?;
    let apply = site.apply()?;
    ensure!(apply.success(), "{apply}\n{}", pebble.logs());
    let (on_a, _) = served_certificate(&site.a, "tfinal.test")?;
    let cron = "/etc/cron.d/siteward-tls_tfinal";
    ensure!(site.a.exists(cron)?, "A renews while it serves");

    place("b", "final-sync")?;
    let apply = site.apply()?;
    ensure!(apply.success(), "{apply}\n{}", pebble.logs());
    let (on_b, _) = served_certificate(&site.b, "tfinal.test")?;
    ensure!(on_b == on_a, "B serves the certificate A had");
    ensure!(
        site.b.exists(cron)? && !site.a.exists(cron)?,
        "B renews it now, A no longer"
    );
    let again = site.apply()?;
    again.assert_success();
    ensure!(again.stdout.contains("No changes"), "{again}");
    Ok(())
}
