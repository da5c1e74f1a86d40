use super::*;
use crate::observe::{PathKind, RedisEndpoint};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

fn shop() -> SiteProbe {
    SiteProbe {
        name: "shop".into(),
        user: "shop".into(),
        domain: "shop.example.com".into(),
        php: Some("8.2".into()),
        database: Some(("mysql".into(), "shop".into())),
        database_users: vec!["shop".into()],
        storage: vec!["storage/app/public".into()],
        source: None,
        health: None,
        adopted: Vec::new(),
    }
}

fn request() -> ProbeRequest {
    ProbeRequest {
        sites: vec![shop()],
        redis: None,
        only_requested: false,
    }
}

/// An answer made of `records`, framed by the version line and a correct `end`.
/// A `blob` record: the files as GNU tar archives them with `-P` (absolute names), gzipped.
fn blob(files: &[(&str, &str)]) -> String {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // `set_path` refuses absolute paths; GNU tar -P writes them as they are.
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, content.as_bytes()).unwrap();
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, &builder.into_inner().unwrap()).unwrap();
    format!("blob\t{}", STANDARD.encode(gzip.finish().unwrap()))
}

fn framed(records: &[String]) -> String {
    let mut text = String::from("siteward-probe\t1\n");
    for record in records {
        text.push_str(record);
        text.push('\n');
    }
    text.push_str(&format!("end\t{}\n", records.len() + 1));
    text
}

fn parse_text(text: &str) -> Result<ObservedServer, ProbeError> {
    parse(text.as_bytes(), &request())
}

fn malformed(text: &str) -> (usize, String) {
    match parse_text(text) {
        Err(ProbeError::Malformed { line, reason }) => (line, reason),
        other => panic!("expected a malformed answer, got {other:?}"),
    }
}

#[test]
fn the_header_passes_every_fact_as_one_quoted_argument() {
    let mut site = shop();
    site.name = "x'; touch /tmp/pwned #".into();
    site.domain = "$(id)`id`\n-oProxyCommand=x".into();
    let request = ProbeRequest {
        sites: vec![site],
        redis: None,
        only_requested: false,
    };
    let script = render(&request, &ProbeAccess::default()).unwrap();
    let call = script
        .expose()
        .lines()
        .find(|line| line.trim_start().starts_with("sw_site"))
        .unwrap()
        .to_owned();
    assert!(call.contains(r"'x'\''; touch /tmp/pwned #'"), "{call}");
    assert!(script.expose().contains("'$(id)`id`\n-oProxyCommand=x'"));
    assert!(script.expose().ends_with(PROBE_SCRIPT));
}

#[test]
fn the_header_refuses_a_nul_byte() {
    let mut site = shop();
    site.user = "a\0b".into();
    let request = ProbeRequest {
        sites: vec![site],
        redis: None,
        only_requested: false,
    };
    assert!(matches!(
        render(&request, &ProbeAccess::default()),
        Err(ProbeError::Quote(_))
    ));
}

#[test]
fn passwords_travel_only_in_the_script_and_never_in_its_debug_output() {
    let access = ProbeAccess {
        mysql: AdminLogin {
            user: "admin".into(),
            password: Some(Secret::new("p\"a'ss\\w#rd".into())),
        },
        postgres: AdminLogin {
            user: "pgadmin".into(),
            password: Some(Secret::new("pg:pa\\ss".into())),
        },
    };
    let script = render(&request(), &access).unwrap();
    let text = script.expose();
    assert!(text.contains(r#"password="p\"a'\''ss\\w#rd""#), "{text}");
    assert!(
        text.contains(r"sw_pgpass='*:*:*:pgadmin:pg\:pa\\ss'"),
        "{text}"
    );
    assert!(!format!("{script:?}").contains("pa"));
}

#[test]
fn a_postgres_password_with_a_newline_is_refused() {
    let access = ProbeAccess {
        postgres: AdminLogin {
            user: "postgres".into(),
            password: Some(Secret::new("a\nb".into())),
        },
        ..ProbeAccess::default()
    };
    assert!(matches!(
        render(&request(), &access),
        Err(ProbeError::UnsupportedSecret { .. })
    ));
}

#[test]
fn the_redis_endpoint_defaults_to_the_local_port() {
    let script = render(&request(), &ProbeAccess::default()).unwrap();
    assert!(
        script
            .expose()
            .contains("sw_redis_host=127.0.0.1\nsw_redis_port=6379\n")
    );
    let mut custom = request();
    custom.redis = Some(RedisEndpoint {
        host: "cache".into(),
        port: 6380,
    });
    let script = render(&custom, &ProbeAccess::default()).unwrap();
    assert!(
        script
            .expose()
            .contains("sw_redis_host=cache\nsw_redis_port=6380\n")
    );
}

#[test]
fn a_well_formed_answer_becomes_the_observed_server() {
    let root = "/home/shop/shop.example.com";
    let vhost = "server { listen 80; }\n";
    let vhost_sha = hex::encode(Sha256::digest(vhost));
    let answer = framed(&[
        format!("host\t{}", b64("web-1")),
        format!("php\t{}\t1", b64("8.2")),
        "service\tnginx\t1\t1".into(),
        format!("recorded\t{}", b64("shop")),
        format!("fact\t{}\t{}\t{}", b64("shop"), b64("specHash"), b64("abc")),
        format!("lock\t{}\t{}\t{}", b64("shop"), b64("owner"), b64("ci")),
        format!(
            "lock\t{}\t{}\t{}",
            b64("shop"),
            b64("machine"),
            b64("runner")
        ),
        format!("lock\t{}\t{}\t{}", b64("shop"), b64("pid"), b64("42")),
        format!("lock\t{}\t{}\t{}", b64("shop"), b64("acquired"), b64("100")),
        format!("lock\t{}\t{}\t{}", b64("shop"), b64("expires"), b64("200")),
        format!(
            "stat\t{}\td\t{}\t{}\t755\t4096\t-",
            b64(root),
            b64("shop"),
            b64("shop")
        ),
        format!(
            "stat\t{}\tl\t{}\t{}\t777\t12\t{}",
            b64(&format!("{root}/current")),
            b64("shop"),
            b64("shop"),
            b64("releases/2")
        ),
        format!(
            "stat\t{}\tf\t{}\t{}\t644\t{}\t-",
            b64("/etc/nginx/conf.d/siteward-shop.conf"),
            b64("root"),
            b64("root"),
            vhost.len()
        ),
        format!(
            "hash\t{}\t{vhost_sha}",
            b64("/etc/nginx/conf.d/siteward-shop.conf")
        ),
        format!("content\t{}", b64("/etc/nginx/conf.d/siteward-shop.conf")),
        blob(&[("/etc/nginx/conf.d/siteward-shop.conf", vhost)]),
        format!("release\t{}\t{}\t0", b64("shop"), b64("1")),
        format!("release\t{}\t{}\t1", b64("shop"), b64("2")),
        format!("revision\t{}\t{}\tabcdef1", b64("shop"), b64("2")),
        format!(
            "mysql-db\t{}\t{}\t{}\t{}",
            b64("shop"),
            b64("utf8mb4"),
            b64("utf8mb4_unicode_ci"),
            b64("16384")
        ),
        format!("mysql-user\t{}\t", b64("shop")),
        format!(
            "mysql-grant\t{}\t{}\t{}",
            b64("'shop'@'localhost'"),
            b64("shop"),
            b64("SELECT")
        ),
        format!(
            "mysql-grant\t{}\t{}\t{}",
            b64("'shop'@'%'"),
            b64("shop"),
            b64("DROP")
        ),
        format!(
            "process\t{}\t{}\t{}",
            b64("siteward-shop-horizon"),
            b64("siteward-shop-horizon"),
            b64("RUNNING")
        ),
        format!("crontab\t{}\t2", b64("shop")),
    ]);
    let server = parse_text(&answer).unwrap();
    assert_eq!(server.hostname, "web-1");
    assert!(server.php[0].fpm_running);
    let site = &server.sites["shop"];
    let record = site.record.as_ref().unwrap();
    assert_eq!(record.facts["specHash"], "abc");
    assert_eq!(record.lock.as_ref().unwrap().expires_unix, 200);
    assert_eq!(site.paths[root].kind, PathKind::Directory);
    assert_eq!(site.current_release.as_deref(), Some("2"));
    assert_eq!(site.releases[1].commit.as_deref(), Some("abcdef1"));
    assert!(site.releases[1].bad);
    let file = &site.files["/etc/nginx/conf.d/siteward-shop.conf"];
    assert_eq!(
        (file.sha256.as_str(), file.content.as_deref()),
        (vhost_sha.as_str(), Some(vhost))
    );
    assert_eq!(site.database.as_ref().unwrap().size_bytes, 16384);
    assert_eq!(site.database_users["shop"].privileges, vec!["SELECT"]);
    assert_eq!(site.processes[0].state, "RUNNING");
    assert_eq!(site.user_crontab_lines, 2);
    assert!(server.problems.is_empty(), "{:?}", server.problems);
}

#[test]
fn a_missing_end_record_means_the_answer_was_truncated() {
    let answer = format!("siteward-probe\t1\nhost\t{}\n", b64("web-1"));
    assert!(matches!(
        parse_text(&answer),
        Err(ProbeError::Truncated { lines: 2 })
    ));
    assert!(matches!(
        parse_text(""),
        Err(ProbeError::Truncated { lines: 0 })
    ));
}

#[test]
fn an_end_record_with_the_wrong_count_is_rejected() {
    let answer = format!("siteward-probe\t1\nhost\t{}\nend\t5\n", b64("web-1"));
    let (line, reason) = malformed(&answer);
    assert_eq!(line, 3);
    assert!(reason.contains("counts 5 records, 2 arrived"), "{reason}");
}

#[test]
fn malformed_lines_are_rejected_with_their_number_and_reason() {
    let cases: &[(&str, &str)] = &[
        ("php\t!!!\t1", "field 1 is not base64"),
        ("php\tOC4y\tyes", "field 2 `yes` is not 0 or 1"),
        ("php\tOC4y", "`php` record has 1 field(s), expected more"),
        ("php\tOC4y\t1\t1", "`php` record has more than 2 field(s)"),
        ("disk\tL2hvbWU=\t-5\t10", "field 2 `-5` is not a number"),
        (
            "stat\tLw==\tx\tcm9vdA==\tcm9vdA==\t755\t0\t-",
            "unknown path kind `x`",
        ),
        (
            "stat\tLw==\td\tcm9vdA==\tcm9vdA==\t9999\t0\t-",
            "is not a file mode",
        ),
        ("hash\tLw==\tABC", "is not a sha256"),
        ("revision\tcw==\tMQ==\tnot-hex", "is not a commit id"),
        ("teleport\tx", "unknown record `teleport`"),
    ];
    for (record, expected) in cases {
        let (line, reason) = malformed(&framed(&[(*record).to_owned()]));
        assert_eq!(line, 2, "{record}");
        assert!(reason.contains(expected), "{record}: {reason}");
    }
}

#[test]
fn an_answer_must_start_with_the_protocol_version() {
    let (line, reason) = malformed("hello\nend\t1\n");
    assert_eq!(
        (line, reason.as_str()),
        (1, "the answer does not start with `siteward-probe`")
    );
    let (_, reason) = malformed("siteward-probe\t2\nend\t1\n");
    assert!(
        reason.contains("protocol version 2, expected 1"),
        "{reason}"
    );
}

#[test]
fn data_after_the_end_record_is_rejected() {
    let answer = "siteward-probe\t1\nend\t1\nhost\tx\n";
    let (line, reason) = malformed(answer);
    assert_eq!((line, reason.as_str()), (3, "data after the `end` record"));
}

#[test]
fn an_answer_that_is_not_utf8_is_rejected_with_its_line() {
    let answer = b"siteward-probe\t1\nhost\t\xff\nend\t2\n";
    match parse(answer, &request()) {
        Err(ProbeError::Malformed { line: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn contents_that_do_not_match_their_hash_are_dropped_with_a_problem() {
    let path = "/etc/cron.d/siteward-shop";
    let answer = framed(&[
        format!(
            "stat\t{}\tf\t{}\t{}\t644\t3\t-",
            b64(path),
            b64("root"),
            b64("root")
        ),
        format!("hash\t{}\t{}", b64(path), "0".repeat(64)),
        format!("content\t{}", b64(path)),
        blob(&[(path, "abc")]),
    ]);
    let server = parse_text(&answer).unwrap();
    assert_eq!(server.sites["shop"].files[path].content, None);
    assert_eq!(server.problems[0].topic, "files");
}

#[test]
fn a_file_that_changed_while_observed_spoils_its_own_content_only() {
    let cron = "/etc/cron.d/siteward-shop";
    let vhost = "/etc/nginx/conf.d/siteward-shop.conf";
    let (cron_now, vhost_text) = ("* * * * * root true\n", "server {}\n");
    let mut records = Vec::new();
    for (path, text) in [(cron, "# older\n"), (vhost, vhost_text)] {
        records.push(format!(
            "stat\t{}\tf\t{}\t{}\t644\t{}\t-",
            b64(path),
            b64("root"),
            b64("root"),
            text.len()
        ));
        records.push(format!("hash\t{}\t{}", b64(path), sha256_hex(text)));
        records.push(format!("content\t{}", b64(path)));
    }
    records.push(blob(&[(cron, cron_now), (vhost, vhost_text)]));
    let server = parse_text(&framed(&records)).unwrap();
    let files = &server.sites["shop"].files;
    assert_eq!(files[cron].content, None);
    assert_eq!(files[vhost].content.as_deref(), Some(vhost_text));
    let messages: Vec<&str> = server.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [format!(
            "no content for {cron}: it changed while it was observed"
        )]
    );
}

#[test]
fn a_file_gone_before_it_was_read_is_a_problem_and_the_others_arrive() {
    let cron = "/etc/cron.d/siteward-shop";
    let vhost = "/etc/nginx/conf.d/siteward-shop.conf";
    let mut records = Vec::new();
    for path in [cron, vhost] {
        records.push(format!(
            "stat\t{}\tf\t{}\t{}\t644\t2\t-",
            b64(path),
            b64("root"),
            b64("root"),
        ));
        records.push(format!("hash\t{}\t{}", b64(path), sha256_hex("x\n")));
        records.push(format!("content\t{}", b64(path)));
    }
    records.push(blob(&[(vhost, "x\n")]));
    let server = parse_text(&framed(&records)).unwrap();
    let files = &server.sites["shop"].files;
    assert_eq!(files[vhost].content.as_deref(), Some("x\n"));
    assert_eq!(files[cron].content, None);
    assert!(
        server.problems[0].message.contains("went away"),
        "{:?}",
        server.problems
    );
}

#[test]
fn programs_go_to_the_site_with_the_longest_matching_name() {
    let mut request = request();
    let mut eu = shop();
    eu.name = "shop-eu".into();
    request.sites.push(eu);
    let answer = framed(&[
        format!(
            "process\t{}\t{}\t{}",
            b64("siteward-shop-eu-horizon"),
            b64("siteward-shop-eu-horizon"),
            b64("RUNNING")
        ),
        format!(
            "process\t{}\t{}\t{}",
            b64("siteward-shop-queue"),
            b64("siteward-shop-queue_00"),
            b64("FATAL")
        ),
    ]);
    let server = parse(answer.as_bytes(), &request).unwrap();
    assert_eq!(server.sites["shop-eu"].processes[0].state, "RUNNING");
    assert_eq!(server.sites["shop"].processes.len(), 1);
    assert_eq!(server.sites["shop"].processes[0].state, "FATAL");
}

#[test]
fn grants_on_escaped_schema_names_count_for_the_database() {
    let mut site = shop();
    site.database = Some(("mariadb".into(), "shop_db".into()));
    let request = ProbeRequest {
        sites: vec![site],
        redis: None,
        only_requested: false,
    };
    let answer = framed(&[
        format!("mysql-user\t{}\t", b64("shop")),
        format!(
            "mysql-grant\t{}\t{}\t{}",
            b64("'shop'@'localhost'"),
            b64(r"shop\\_db"),
            b64("insert")
        ),
    ]);
    let server = parse(answer.as_bytes(), &request).unwrap();
    assert_eq!(
        server.sites["shop"].database_users["shop"].privileges,
        vec!["INSERT"]
    );
}

#[test]
fn recorded_sites_are_observed_with_their_recorded_facts() {
    let answer = framed(&[
        format!("recorded\t{}", b64("old")),
        format!("fact\t{}\t{}\t{}", b64("old"), b64("user"), b64("olduser")),
        format!(
            "fact\t{}\t{}\t{}",
            b64("old"),
            b64("domain"),
            b64("old.example.com")
        ),
        format!(
            "stat\t{}\td\t{}\t{}\t750\t4096\t-",
            b64("/home/olduser/old.example.com"),
            b64("olduser"),
            b64("olduser")
        ),
        format!("lock\t{}\t{}\t{}", b64("old"), b64("pid"), b64("x")),
    ]);
    let server = parse_text(&answer).unwrap();
    let old = &server.sites["old"];
    assert!(old.paths.contains_key("/home/olduser/old.example.com"));
    assert_eq!(old.record.as_ref().unwrap().lock, None);
    assert_eq!(server.problems[0].topic, "lock");
    assert_eq!(server.recorded_sites, vec!["old"]);
}

#[test]
fn certificates_and_the_shared_tls_snippet_reach_their_sites() {
    let mut request = request();
    let mut blog = shop();
    blog.name = "blog".into();
    request.sites.push(blog);
    let snippet = "ssl_protocols TLSv1.2 TLSv1.3;\n";
    let snippet_path = crate::layout::TLS_SNIPPET;
    let cert = |line: &str| format!("cert\t{}\t{}\t{}", b64("shop"), b64("acme"), b64(line));
    let answer = framed(&[
        "service\tcertbot\t1\t0".to_owned(),
        format!("content\t{}", b64(snippet_path)),
        format!(
            "stat\t{}\tf\t{}\t{}\t644\t{}\t-",
            b64(snippet_path),
            b64("root"),
            b64("root"),
            snippet.len()
        ),
        format!("hash\t{}\t{}", b64(snippet_path), sha256_hex(snippet)),
        cert("sha256 Fingerprint=AB:CD"),
        cert("notAfter=Dec  6 08:00:00 2027 GMT"),
        cert("issuer=CN=Pebble Intermediate CA"),
        cert("X509v3 Subject Alternative Name: "),
        cert("    DNS:shop.example.com"),
        blob(&[(snippet_path, snippet)]),
    ]);
    let server = parse(answer.as_bytes(), &request).unwrap();
    assert!(server.services["certbot"].installed);
    let certificate = &server.sites["shop"].certificates["acme"];
    assert_eq!(certificate.names, vec!["shop.example.com"]);
    assert_eq!(certificate.sha256, "abcd");
    assert!(server.sites["blog"].certificates.is_empty());
    for site in ["shop", "blog"] {
        let file = &server.sites[site].files[snippet_path];
        assert_eq!(file.content.as_deref(), Some(snippet), "{site}");
    }
}
