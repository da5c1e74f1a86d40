//! `siteward validate` on good and bad specs: every bad input gives its located error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn siteward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siteward"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("siteward runs")
}

fn fixture(name: &str) -> String {
    format!("tests/fixtures/invalid/{name}.yaml")
}

/// Validates a fixture next to the base server and returns (exit code, stderr).
fn validate_fixture(name: &str) -> (i32, String) {
    let output = siteward(&["validate", "tests/fixtures/base", &fixture(name)]);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts the fixture fails with a message at `line:column`, the caret snippet and a hint.
fn assert_located(name: &str, line_column: &str, message: &str, hint: &str) {
    let (code, stderr) = validate_fixture(name);
    assert_eq!(code, 1, "{name} must be invalid:\n{stderr}");
    let location = format!("--> {}:{line_column}", fixture(name));
    assert!(
        stderr.contains(&location),
        "{name}: expected {location} in:\n{stderr}"
    );
    assert!(
        stderr.contains(message),
        "{name}: expected message {message:?} in:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("hint: {hint}")) || stderr.contains(hint),
        "{name}: expected hint {hint:?} in:\n{stderr}"
    );
    let caret_line = stderr
        .lines()
        .skip_while(|l| !l.contains(&location))
        .nth(3)
        .unwrap_or_default();
    if !line_column.is_empty() {
        assert!(
            caret_line.trim_end().ends_with('^'),
            "{name}: expected a caret line, got {caret_line:?}\n{stderr}"
        );
    }
}

#[test]
fn the_specs_and_examples_of_the_repository_are_valid() {
    for dir in ["specs", "examples"] {
        let output = siteward(&["validate", dir]);
        assert!(
            output.status.success(),
            "{dir}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("valid: "));
    }
}

#[test]
fn the_design_documents_validate_exactly_as_written() {
    let output = siteward(&["validate", "tests/fixtures/valid/design.yaml"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "valid: 1 server, 1 site in 1 file\n"
    );
}

#[test]
fn a_misspelt_field_names_the_field_that_was_meant() {
    assert_located(
        "misspelt-field",
        "8:3",
        "unknown field `domian` in `spec`",
        "did you mean `domain`?",
    );
    let (_, stderr) = validate_fixture("misspelt-field");
    assert!(!stderr.contains("missing field `domain`"), "{stderr}");
}

#[test]
fn a_duplicate_key_is_an_error() {
    assert_located(
        "duplicate-key",
        "10:3",
        "duplicate mapping key: domain",
        "each key may appear once",
    );
}

#[test]
fn yes_is_not_a_boolean() {
    assert_located(
        "yes-boolean",
        "11:15",
        "`required` must be a boolean, found a string",
        "`yes`/`no`",
    );
}

#[test]
fn an_alias_bomb_fails_fast_with_bounded_memory() {
    let started = Instant::now();
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 1048576; exec {} validate {}",
            env!("CARGO_BIN_EXE_siteward"),
            fixture("alias-bomb")
        ))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("alias replay limit exceeded"), "{stderr}");
    assert!(
        stderr.contains(&format!("--> {}:5:", fixture("alias-bomb"))),
        "{stderr}"
    );
}

#[test]
fn a_deeply_nested_document_is_refused() {
    assert_located(
        "deep-nesting",
        "5:70",
        "nesting is deeper than 64 levels",
        "limited in nesting",
    );
}

#[test]
fn a_site_on_a_server_that_does_not_exist_is_refused() {
    assert_located(
        "unknown-server",
        "6:11",
        "server `nowhere` does not exist",
        "the servers are: base",
    );
}

#[test]
fn two_sites_with_one_name_are_refused() {
    assert_located(
        "duplicate-site",
        "14:9",
        "Site `shop` is defined twice",
        "the first `shop` is at tests/fixtures/invalid/duplicate-site.yaml:4:9",
    );
}

#[test]
fn an_invalid_cron_schedule_is_refused() {
    assert_located(
        "invalid-cron",
        "12:17",
        "invalid cron schedule `61 * * * *`",
        "five fields",
    );
}

#[test]
fn a_domain_with_a_space_is_refused() {
    assert_located(
        "domain-with-space",
        "8:11",
        "domain `shop example.com`: contains a space",
        "like `shop.example.com`",
    );
}

#[test]
fn a_user_name_with_shell_syntax_is_refused() {
    assert_located(
        "user-injection",
        "9:9",
        "`root; rm -rf /` is not a valid Linux user name",
        "lowercase letters",
    );
}

#[test]
fn a_database_name_with_a_backtick_is_refused() {
    assert_located(
        "database-backtick",
        "13:11",
        "`shop`db` is not a valid database name",
        "letters, digits and `_`",
    );
}

#[test]
fn storage_paths_that_leave_the_site_are_refused() {
    assert_located(
        "storage-escape",
        "11:7",
        "path `../../etc` leaves the site through `..`",
        "stay inside it",
    );
    assert_located(
        "storage-escape",
        "12:7",
        "path `/var/www` is absolute",
        "stay inside it",
    );
}

#[test]
fn an_empty_secret_reference_is_refused() {
    assert_located(
        "empty-secret",
        "12:15",
        "secret reference `env:` names no variable after `env:`",
        "env:NAME",
    );
    assert_located(
        "empty-secret-flow",
        "11:26",
        "invalid YAML",
        "`{secret: env:NAME}`",
    );
}

#[test]
fn an_empty_file_is_refused() {
    let (code, stderr) = validate_fixture("empty");
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("--> {}\n", fixture("empty"))),
        "{stderr}"
    );
    assert!(
        stderr.contains("the file holds no spec documents"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: write a document"), "{stderr}");
}

#[test]
fn a_binary_file_is_refused() {
    let (code, stderr) = validate_fixture("binary");
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("--> {}\n", fixture("binary"))),
        "{stderr}"
    );
    assert!(
        stderr.contains("the file is binary, not YAML text"),
        "{stderr}"
    );
}

#[test]
fn a_list_where_a_mapping_is_expected_is_refused() {
    assert_located(
        "list-not-mapping",
        "1:1",
        "a spec document must be a mapping, found a list",
        "apiVersion",
    );
}

#[test]
fn a_document_without_kind_is_refused() {
    assert_located(
        "no-kind",
        "1:1",
        "missing field `kind`",
        "`kind: Server` or `kind: Site`",
    );
}

#[test]
fn an_unknown_api_version_is_refused() {
    assert_located(
        "unknown-api-version",
        "1:13",
        "unknown apiVersion `siteward.dev/v2`",
        "siteward.dev/v1",
    );
}

#[test]
fn every_error_of_a_run_is_reported_at_once() {
    let all: Vec<String> = std::fs::read_dir("tests/fixtures/invalid")
        .unwrap()
        .map(|entry| entry.unwrap().path().display().to_string())
        .collect();
    let mut args = vec!["validate", "tests/fixtures/base"];
    args.extend(all.iter().map(String::as_str));
    let output = siteward(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors = stderr.lines().filter(|l| l.starts_with("error: ")).count();
    assert!(
        errors >= all.len(),
        "{errors} errors for {} files:\n{stderr}",
        all.len()
    );
}

#[test]
fn json_output_lists_errors_with_locations() {
    let output = siteward(&[
        "validate",
        "--format",
        "json",
        "tests/fixtures/base",
        &fixture("storage-escape"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["formatVersion"], 1);
    assert_eq!(json["valid"], false);
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["line"], 11);
    assert_eq!(errors[0]["column"], 7);
    assert_eq!(errors[0]["pointer"], "/spec/storage/0");
}

#[test]
fn the_checked_in_schema_is_current() {
    let output = siteward(&["schema", "--check"]);
    assert!(
        output.status.success(),
        "run `siteward schema`: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_stale_schema_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().display().to_string();
    assert!(siteward(&["schema", "--dir", &dir_arg]).status.success());
    std::fs::write(dir.path().join("site.json"), "{}\n").unwrap();
    let output = siteward(&["schema", "--check", "--dir", &dir_arg]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the schema files are stale"));
}

#[test]
fn every_spec_file_points_editors_at_the_schema() {
    for dir in ["specs", "examples"] {
        for file in yaml_files(Path::new(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let first = text.lines().next().unwrap_or_default();
            let expected = format!("# yaml-language-server: $schema={}", relative_schema(&file));
            assert_eq!(first, expected, "{}", file.display());
        }
    }
}

#[test]
fn discover_names_the_servers_the_specs_have_when_asked_for_another() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("servers.yaml"),
        "apiVersion: siteward.dev/v1\nkind: Server\nmetadata:\n  name: web-1\nspec:\n  address: 192.0.2.1\n",
    )
    .unwrap();
    let specs = dir.path().to_str().unwrap();
    let output = siteward(&["discover", "web-9", "--specs", specs]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: no Server named `web-9`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: servers in the specs: web-1"),
        "{stderr}"
    );
}

#[test]
fn the_daemon_refuses_to_start_on_invalid_specs_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("servers.yaml"),
        "apiVersion: siteward.dev/v1\nkind: Server\nmetadata:\n  name: web-1\nspec:\n  adress: 10.0.0.1\n",
    )
    .unwrap();
    let state = dir.path().join("state.db");
    let output = siteward(&[
        "--state",
        state.to_str().unwrap(),
        "watch",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("are invalid") && stderr.contains("servers.yaml:6:3"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn a_usage_error_exits_64() {
    assert_eq!(
        siteward(&["validate", "--no-such-flag"]).status.code(),
        Some(64)
    );
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
    files
}

fn relative_schema(file: &Path) -> String {
    let depth = file.components().count() - 1;
    format!("{}schemas/siteward.json", "../".repeat(depth))
}

#[test]
fn a_tls_section_with_both_kinds_and_a_bad_email_names_both_at_once() {
    assert_located(
        "tls-both-and-bad-email",
        "13:5",
        "`tls` holds both `acme` and `certificate`",
        "not both",
    );
    assert_located(
        "tls-both-and-bad-email",
        "12:14",
        "`ops.example.com` is not an email address: it has no `@`",
        "expiry notices",
    );
}
