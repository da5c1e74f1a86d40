//! The SSH transport against real OpenSSH servers: most tests start their own sshd on 127.0.0.1
//! with host keys they control, so host key checking can be exercised in every way; the last
//! ones use the fleet host `t-transport-a` (scripts/fleet), a full server in its own namespaces.

mod support;

use support::sshd::{Agent, Sshd, connect_error, free_port, make_key, quick_timeouts, run};

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use siteward::transport::quote::{Command, sh_c};
use siteward::transport::{
    Become, Identity, SshError, SshSession, SshTarget, Stdin, Transport, TransportError,
    WriteOutcome,
};
use tokio::io::AsyncRead;

/// A deterministic byte stream of `len` bytes, produced as it is read.
struct Generated {
    remaining: usize,
    counter: u8,
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _context: &mut std::task::Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let len = buffer.remaining().min(self.remaining).min(7919);
        for _ in 0..len {
            self.counter = self.counter.wrapping_mul(31).wrapping_add(7);
            let byte = self.counter;
            buffer.put_slice(&[byte]);
        }
        self.remaining -= len;
        std::task::Poll::Ready(Ok(()))
    }
}

fn generated_sha256(len: usize) -> String {
    let mut counter = 0u8;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            counter = counter.wrapping_mul(31).wrapping_add(7);
            counter
        })
        .collect();
    hex::encode(Sha256::digest(bytes))
}

// --- exec -------------------------------------------------------------------------------------

#[tokio::test]
async fn exec_returns_stdout_stderr_and_exit_status() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let output = session
        .exec("printf out; printf err >&2; exit 3", Stdin::Empty)
        .await
        .unwrap();
    assert_eq!(output.stdout, b"out");
    // The login shell of the machine may add its own noise (a profile), never after ours.
    assert!(
        output.stderr.ends_with(b"err"),
        "{:?}",
        output.stderr_lossy()
    );
    assert_eq!(output.status, 3);
    assert!(!output.success());
    let whoami = session.exec("id -un", Stdin::Empty).await.unwrap();
    assert_eq!(whoami.stdout_lossy(), "root\n");
}

#[tokio::test]
async fn stdin_bytes_reach_the_command() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let output = session
        .exec("tr a-z A-Z", Stdin::from("hello\n"))
        .await
        .unwrap();
    assert_eq!(output.stdout_lossy(), "HELLO\n");
}

#[tokio::test]
async fn stdin_streams_megabytes_from_a_reader() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let len = 12 * 1024 * 1024 + 17;
    let stdin = Stdin::reader(Generated {
        remaining: len,
        counter: 0,
    });
    let output = session.exec("sha256sum", stdin).await.unwrap();
    assert!(output.success(), "{output:?}");
    assert_eq!(
        output.stdout_lossy().split_whitespace().next(),
        Some(generated_sha256(len).as_str())
    );
}

#[tokio::test]
async fn a_command_that_ignores_its_input_does_not_hang_the_sender() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let stdin = Stdin::reader(Generated {
        remaining: 64 * 1024 * 1024,
        counter: 0,
    });
    let output = session.exec("echo done", stdin).await.unwrap();
    assert_eq!(output.stdout_lossy(), "done\n");
}

/// Yields some bytes, then fails, like a dump whose source breaks halfway.
struct Failing {
    sent: bool,
}

impl AsyncRead for Failing {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _context: &mut std::task::Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.sent {
            return std::task::Poll::Ready(Err(std::io::Error::other("source broke")));
        }
        self.sent = true;
        buffer.put_slice(b"partial");
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_failing_stdin_source_stops_the_command_and_is_reported() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let target = sshd.path("partial");
    let command = format!("cat > {} && echo complete", target.display());
    let stdin = Stdin::reader(Failing { sent: false });
    let error = session.exec(&command, stdin).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("could not read the input for `cat >"),
        "{error}"
    );
    // A bound of its own: this checks the connection, not the machine's speed.
    let after = session
        .with_exec_timeout(Duration::from_secs(30))
        .exec("echo still usable", Stdin::Empty)
        .await
        .unwrap();
    assert_eq!(after.stdout_lossy(), "still usable\n");
}

#[tokio::test]
async fn stdout_streams_to_a_writer() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump");
    let mut file = tokio::fs::File::create(&path).await.unwrap();
    let exit = session
        .exec_streaming(
            "head -c 9000000 /dev/zero; echo fine >&2",
            Stdin::Empty,
            &mut file,
        )
        .await
        .unwrap();
    assert_eq!((exit.status, exit.stderr.as_slice()), (0, &b"fine\n"[..]));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 9_000_000);
}

/// The server rekeys every 4 MB while four channels stream to siteward and two stream from it:
/// every byte arrives. (A rekey russh starts itself under such load drops the connection, so
/// siteward leaves rekeying to the server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rekeys_under_load_on_many_channels_lose_nothing() {
    const MIB: u64 = 1 << 20;
    let sshd = Sshd::start_with(&["ed25519"], "RekeyLimit 4M\nLogLevel DEBUG1");
    let session = sshd.session().await;
    let dir = tempfile::tempdir().unwrap();
    let downloads = (0..4).map(|index| {
        let session = session.clone();
        let path = dir.path().join(format!("download-{index}"));
        async move {
            let mut file = tokio::fs::File::create(&path).await.unwrap();
            let command = format!("head -c {} /dev/urandom", 40 * MIB);
            let exit = session
                .exec_streaming(&command, Stdin::Empty, &mut file)
                .await
                .unwrap();
            assert_eq!(exit.status, 0, "{exit:?}");
            std::fs::metadata(&path).unwrap().len()
        }
    });
    let uploads = (0..2).map(|_| {
        let session = session.clone();
        async move {
            let data = vec![7u8; (24 * MIB) as usize];
            let output = session.exec("wc -c", Stdin::Bytes(&data)).await.unwrap();
            output.stdout_lossy().trim().parse::<u64>().unwrap()
        }
    });
    let (downloaded, uploaded) = tokio::join!(
        futures::future::join_all(downloads),
        futures::future::join_all(uploads)
    );
    assert_eq!(downloaded, vec![40 * MIB; 4]);
    assert_eq!(uploaded, vec![24 * MIB; 2]);
    let log = sshd.log();
    assert_eq!(
        log.matches("Accepted publickey").count(),
        1,
        "one connection, never dropped"
    );
    let rekeys = log
        .lines()
        .filter(|line| line.contains("SSH2_MSG_KEXINIT sent") && !line.contains("[preauth]"))
        .count();
    assert!(rekeys >= 10, "the server rekeyed {rekeys} times");
}

#[tokio::test]
async fn exec_count_counts_exactly_one_per_round_trip() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counted").to_str().unwrap().to_owned();
    for _ in 0..5 {
        session.exec("true", Stdin::Empty).await.unwrap();
    }
    assert_eq!(session.exec_count(), 5);
    session
        .write_file_atomic(&path, b"x", "root", "root", 0o600)
        .await
        .unwrap();
    session.read_file(&path).await.unwrap();
    let clone = session.clone();
    clone.exec("true", Stdin::Empty).await.unwrap();
    assert_eq!(session.exec_count(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_one_connection_for_many_concurrent_commands() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..24 {
        let session = session.clone();
        tasks.spawn(async move {
            let command = format!("sleep 0.1; echo {index}");
            session
                .exec(&command, Stdin::Empty)
                .await
                .unwrap()
                .stdout_lossy()
        });
    }
    let mut answers: Vec<u32> = tasks
        .join_all()
        .await
        .iter()
        .map(|out| out.trim().parse().unwrap())
        .collect();
    answers.sort_unstable();
    assert_eq!(answers, (0..24).collect::<Vec<_>>());
    assert_eq!(session.exec_count(), 24);
    assert_eq!(
        sshd.log().matches("Accepted publickey").count(),
        1,
        "one connection only"
    );
}

#[tokio::test]
async fn a_command_past_the_exec_bound_is_killed_and_reported() {
    let sshd = Sshd::start(&["ed25519"]);
    let mut target = sshd.trusted_target();
    target.timeouts.exec = Duration::from_secs(1);
    let session = SshSession::connect(&target).await.unwrap();
    let started = Instant::now();
    let error = session.exec("sleep 47.5", Stdin::Empty).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(
        message.contains("`sleep 47.5`") && message.contains("within 1s"),
        "{message}"
    );
    // A bound of its own: this checks the connection, not the machine's speed.
    let after = session
        .with_exec_timeout(Duration::from_secs(30))
        .exec("echo still usable", Stdin::Empty)
        .await
        .unwrap();
    assert_eq!(after.stdout_lossy(), "still usable\n");
    // The server is this machine: the command must be gone, not left running.
    let deadline = Instant::now() + Duration::from_secs(5);
    while run_status("pgrep", &["-f", "sleep 47.5"]) {
        assert!(
            Instant::now() < deadline,
            "the timed-out command is still running: {}",
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_command_dies_with_the_connection_that_started_it() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let marker = sshd.path("orphan-finished");
    let command = format!("sleep 3.73; touch {}", marker.display());
    let running = {
        let session = session.clone();
        tokio::spawn(async move { session.exec(&command, Stdin::Empty).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !run_status("pgrep", &["-f", "^sleep 3.73$"]) {
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connection goes away while the command runs, as when siteward is killed.
    session.close().await;
    let _ = running.await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while run_status("pgrep", &["-f", "^sleep 3.73$"]) {
        assert!(
            Instant::now() < deadline,
            "the command outlived its connection by 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!marker.exists(), "the rest of the command ran");
}

#[tokio::test]
async fn a_finished_command_leaves_nothing_running() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    // The command's process group: itself, and its watcher, whose output must go nowhere near
    // the channel (a watcher holding the channel's pipes would hold every command open until it
    // ends, up to a second later).
    let command = "group=$(ps -o pgid= -p $$ | tr -d ' '); echo \"$group\"; \
                   for i in $(seq 100); do pgrep -g \"$group\" -f '^sleep 1$' >/dev/null && break; sleep 0.05; done; \
                   for p in $(pgrep -g \"$group\" -f '^sleep 1$'); do \
                   for q in $p $(ps -o ppid= -p $p); do \
                   readlink /proc/$q/fd/0 /proc/$q/fd/1 /proc/$q/fd/2; done; done; exit 7";
    let output = session.exec(command, Stdin::Empty).await.unwrap();
    assert_eq!(output.status, 7, "the command's own status");
    let stdout = output.stdout_lossy();
    let mut lines = stdout.lines();
    let group = lines.next().unwrap_or_default().to_owned();
    assert!(group.parse::<u32>().is_ok(), "{stdout}");
    let targets: Vec<&str> = lines.collect();
    assert!(
        !targets.is_empty(),
        "no watcher beside the command: {stdout}"
    );
    assert!(
        targets.iter().all(|target| *target == "/dev/null"),
        "the watcher holds the command's channel: {stdout}"
    );
    // Its watcher checks each second and ends once it sees the command gone; a loaded machine
    // may take a few seconds more to run it, never ten.
    // Zombies do not count: this machine's init may be slow to reap orphans.
    let alive = format!("ps -e -o pgid=,stat=,args= | awk '$1 == {group} && $2 !~ /^Z/'");
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left = run("sh", &["-c", &alive]);
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(left, "", "left running in the command's process group");
}

fn run_status(program: &str, args: &[&str]) -> bool {
    let status = std::process::Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .status();
    status.expect(program).success()
}

#[tokio::test]
async fn a_command_killed_by_a_signal_reports_it() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let output = session.exec("kill -TERM $$", Stdin::Empty).await.unwrap();
    assert_eq!(
        (output.status, output.signal.as_deref()),
        (143, Some("TERM"))
    );
}

// --- host keys --------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_host_key_is_refused_by_default() {
    let sshd = Sshd::start(&["ed25519"]);
    let error = connect_error(&sshd.target()).await;
    assert!(
        matches!(error, SshError::HostKeyUnknown { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    for expected in [
        sshd.host_keys[0].fingerprint.as_str(),
        "ssh-keyscan -p",
        "--accept-new-host-keys",
        "hostKey:",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} missing from: {message}"
        );
    }
    assert!(!sshd.path("known_hosts").exists(), "nothing recorded");
}

#[tokio::test]
async fn a_changed_host_key_is_refused_naming_the_fingerprint_and_the_known_hosts_line() {
    let sshd = Sshd::start(&["ed25519"]);
    let old = make_key(sshd.dir.path(), "old", "ed25519", "");
    let known_hosts = format!(
        "# fleet\nother.example {}\n{}\n",
        old.public_line,
        sshd.known_line(&old)
    );
    std::fs::write(sshd.path("known_hosts"), known_hosts).unwrap();
    let error = connect_error(&sshd.target()).await;
    assert!(
        matches!(error, SshError::HostKeyChanged { line: 3, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    let location = format!("{}:3", sshd.path("known_hosts").display());
    for expected in [
        sshd.host_keys[0].fingerprint.as_str(),
        &old.fingerprint,
        &location,
        "ssh-keygen -R",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} missing from: {message}"
        );
    }
}

#[tokio::test]
async fn accept_new_records_an_unknown_key_once_then_refuses_a_different_one() {
    let mut sshd = Sshd::start(&["ed25519"]);
    let mut target = sshd.target();
    target.host_keys.accept_new = true;
    SshSession::connect(&target)
        .await
        .expect("first contact records the key");
    let recorded = std::fs::read_to_string(sshd.path("known_hosts")).unwrap();
    assert_eq!(recorded, sshd.known_line(&sshd.host_keys[0]) + "\n");
    SshSession::connect(&target)
        .await
        .expect("the recorded key is trusted");
    assert_eq!(
        std::fs::read_to_string(sshd.path("known_hosts")).unwrap(),
        recorded,
        "recorded once"
    );

    sshd.replace_host_keys(&["ed25519"], "");
    let error = connect_error(&target).await;
    assert!(
        matches!(error, SshError::HostKeyChanged { line: 1, .. }),
        "{error:?}"
    );
    assert_eq!(
        std::fs::read_to_string(sshd.path("known_hosts")).unwrap(),
        recorded,
        "nothing added"
    );
}

#[tokio::test]
async fn a_key_of_another_type_for_a_known_host_is_refused_even_with_accept_new() {
    let sshd = Sshd::start(&["ed25519"]);
    let ecdsa = make_key(sshd.dir.path(), "old-ecdsa", "ecdsa", "");
    std::fs::write(sshd.path("known_hosts"), sshd.known_line(&ecdsa) + "\n").unwrap();
    let mut target = sshd.target();
    for accept_new in [false, true] {
        target.host_keys.accept_new = accept_new;
        let error = connect_error(&target).await;
        assert!(
            matches!(error, SshError::HostKeyOtherType { line: 1, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("ssh-ed25519") && message.contains("ecdsa-sha2-nistp256"),
            "{message}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(sshd.path("known_hosts"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}

#[tokio::test]
async fn the_known_key_type_is_negotiated_when_the_server_has_several() {
    let sshd = Sshd::start(&["ed25519", "ecdsa"]);
    std::fs::write(
        sshd.path("known_hosts"),
        sshd.known_line(&sshd.host_keys[1]) + "\n",
    )
    .unwrap();
    SshSession::connect(&sshd.target())
        .await
        .expect("the ecdsa key is asked for and trusted");
}

#[tokio::test]
async fn a_pinned_fingerprint_is_accepted_and_a_mismatch_refused() {
    let sshd = Sshd::start(&["ed25519"]);
    let mut target = sshd.target();
    target.host_keys.pinned = Some(sshd.host_keys[0].fingerprint.clone());
    let session = SshSession::connect(&target)
        .await
        .expect("the pinned key is accepted");
    assert!(session.exec("true", Stdin::Empty).await.unwrap().success());

    let other = make_key(sshd.dir.path(), "other", "ed25519", "");
    target.host_keys.pinned = Some(other.fingerprint.clone());
    let error = connect_error(&target).await;
    assert!(
        matches!(error, SshError::HostKeyPinMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&other.fingerprint) && message.contains(&sshd.host_keys[0].fingerprint)
    );

    target.host_keys.pinned = Some("MD5:00:11".to_owned());
    assert!(matches!(
        connect_error(&target).await,
        SshError::InvalidPin { .. }
    ));
}

#[tokio::test]
async fn hashed_known_hosts_entries_are_honoured() {
    let sshd = Sshd::start(&["ed25519"]);
    let target = sshd.trusted_target();
    let path = sshd.path("known_hosts");
    run("ssh-keygen", &["-q", "-H", "-f", path.to_str().unwrap()]);
    let hashed = std::fs::read_to_string(&path).unwrap();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    SshSession::connect(&target)
        .await
        .expect("the hashed entry matches");
}

#[tokio::test]
async fn a_revoked_host_key_is_refused() {
    let sshd = Sshd::start(&["ed25519"]);
    let target = sshd.trusted_target();
    let revoked = format!("@revoked * {}\n", sshd.host_keys[0].public_line);
    let mut known_hosts = std::fs::read_to_string(sshd.path("known_hosts")).unwrap();
    known_hosts.push_str(&revoked);
    std::fs::write(sshd.path("known_hosts"), known_hosts).unwrap();
    let error = connect_error(&target).await;
    assert!(
        matches!(error, SshError::HostKeyRevoked { line: 2, .. }),
        "{error:?}"
    );
}

// --- authentication ---------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_user_gives_a_clear_auth_error() {
    let sshd = Sshd::start(&["ed25519"]);
    let mut target = sshd.trusted_target();
    target.user = "nosuchuser".to_owned();
    let message = connect_error(&target).await.to_string();
    let expected = format!(
        "authentication as `nosuchuser` on 127.0.0.1:{} failed with key",
        sshd.port
    );
    assert!(message.starts_with(&expected), "{message}");
}

#[tokio::test]
async fn a_wrong_key_gives_a_clear_auth_error_naming_the_key() {
    let sshd = Sshd::start(&["ed25519"]);
    let stranger = make_key(sshd.dir.path(), "stranger", "ed25519", "");
    let mut target = sshd.trusted_target();
    target.identity = Identity::File(stranger.private.clone());
    let error = connect_error(&target).await;
    assert!(matches!(error, SshError::AuthFailed { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(stranger.private.to_str().unwrap()),
        "{error}"
    );
}

#[tokio::test]
async fn an_encrypted_key_is_refused_with_a_hint() {
    let sshd = Sshd::start(&["ed25519"]);
    let locked = make_key(sshd.dir.path(), "locked", "ed25519", "secret passphrase");
    let mut target = sshd.trusted_target();
    target.identity = Identity::File(locked.private);
    let message = connect_error(&target).await.to_string();
    assert!(
        message.contains("is encrypted") && message.contains("ssh-agent"),
        "{message}"
    );
}

#[tokio::test]
async fn rsa_and_ecdsa_client_keys_authenticate() {
    let sshd = Sshd::start(&["ed25519"]);
    let rsa = make_key(sshd.dir.path(), "client-rsa", "rsa", "");
    let ecdsa = make_key(sshd.dir.path(), "client-ecdsa", "ecdsa", "");
    let authorized = format!("{}\n{}\n", rsa.public_line, ecdsa.public_line);
    std::fs::write(sshd.path("authorized_keys"), authorized).unwrap();
    for key in [rsa, ecdsa] {
        let mut target = sshd.trusted_target();
        target.identity = Identity::File(key.private.clone());
        let session = SshSession::connect(&target)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(session.exec("true", Stdin::Empty).await.unwrap().success());
    }
}

#[tokio::test]
async fn an_ssh_agent_key_authenticates() {
    let sshd = Sshd::start(&["ed25519"]);
    let agent = Agent::start(sshd.dir.path(), &sshd.client_key.private);
    let mut target = sshd.trusted_target();
    target.identity = Identity::AgentAt(agent.socket.clone());
    let session = SshSession::connect(&target)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(session.exec("true", Stdin::Empty).await.unwrap().success());
}

// --- unreachable servers ----------------------------------------------------------------------

#[tokio::test]
async fn a_blackholed_port_times_out_within_the_connect_bound() {
    // Accepts TCP (the kernel completes the handshake) but never speaks SSH.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut target = Sshd::start(&["ed25519"]).target();
    target.port = listener.local_addr().unwrap().port();
    target.timeouts.connect = Duration::from_secs(1);
    let started = Instant::now();
    let error = connect_error(&target).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, SshError::ConnectTimeout { .. }),
        "{error:?}"
    );
    let expected = format!("could not connect to 127.0.0.1:{} within 1s", target.port);
    assert!(error.to_string().starts_with(&expected), "{error}");
}

#[tokio::test]
async fn a_port_that_drops_connection_attempts_times_out_within_the_connect_bound() {
    // A listener whose accept queue is full: the kernel drops further SYNs, as a firewall would.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let _queued: Vec<_> = (0..3)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()
        })
        .collect();
    let mut target = Sshd::start(&["ed25519"]).target();
    target.port = address.port();
    target.timeouts.connect = Duration::from_secs(1);
    let started = Instant::now();
    let error = connect_error(&target).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, SshError::ConnectTimeout { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_down_host_fails_within_the_connect_bound() {
    // Depending on the network this is a timeout, "no route to host", or (behind a transparent
    // proxy) a handshake cut short: all must come within the bound and name the server.
    let mut target = Sshd::start(&["ed25519"]).target();
    target.address = "10.77.250.2".to_owned();
    target.port = 22;
    target.timeouts.connect = Duration::from_secs(2);
    let started = Instant::now();
    let error = connect_error(&target).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let expected = matches!(
        error,
        SshError::ConnectTimeout { .. } | SshError::Connect { .. } | SshError::Handshake { .. }
    );
    assert!(expected, "{error:?}");
    assert!(error.to_string().contains("10.77.250.2:22"), "{error}");
}

#[tokio::test]
async fn a_refused_connection_names_the_endpoint() {
    let mut target = Sshd::start(&["ed25519"]).target();
    target.port = free_port();
    let error = connect_error(&target).await;
    assert!(
        matches!(error, SshError::ConnectRefused { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("connection to 127.0.0.1:{} refused", target.port)
    );
}

// --- quoting against a real shell -------------------------------------------------------------

fn injection_corpus(marker: &Path) -> Vec<String> {
    let marker = marker.display();
    vec![
        format!("x'; touch {marker} #"),
        format!("$(touch {marker})"),
        format!("`touch {marker}`"),
        format!("\ntouch {marker}\n"),
        format!("-oProxyCommand=touch {marker}"),
        format!("\"; touch {marker}; \""),
        format!("|| touch {marker}"),
        format!("a\\'b'$(touch {marker})'"),
        "{a,b} * ~root $HOME ${PATH} é漢".to_owned(),
        "-".to_owned(),
        String::new(),
    ]
}

#[tokio::test]
async fn injection_values_passed_as_quoted_arguments_never_execute() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let marker = sshd.path("pwned");
    for value in injection_corpus(&marker) {
        let printf = Command::new("printf")
            .arg("%s")
            .arg(&value)
            .render()
            .unwrap();
        let script = Command::script("printf %s \"$1\"")
            .arg(&value)
            .render()
            .unwrap();
        for command in [printf.clone(), script, sh_c(&printf).unwrap()] {
            let output = session.exec(&command, Stdin::Empty).await.unwrap();
            assert_eq!(output.stdout_lossy(), value, "{command}");
        }
    }
    assert!(!marker.exists(), "an injected command ran");
}

#[tokio::test]
async fn injection_values_survive_sudo_wrapping() {
    // `sudo` on this sshd's PATH is a stand-in that checks `-n --` and runs the rest as is.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake_sudo =
        "#!/bin/sh\n[ \"$1\" = -n ] && [ \"$2\" = -- ] || exit 99\nshift 2\nexec \"$@\"\n";
    std::fs::write(bin.join("sudo"), fake_sudo).unwrap();
    let login = format!(
        "#!/bin/sh\nPATH={}:$PATH\nexport PATH\nexec sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
        bin.display()
    );
    std::fs::write(dir.path().join("login"), login).unwrap();
    run(
        "chmod",
        &[
            "755",
            bin.join("sudo").to_str().unwrap(),
            dir.path().join("login").to_str().unwrap(),
        ],
    );
    let force = format!("ForceCommand {}", dir.path().join("login").display());
    let sshd = Sshd::start_with(&["ed25519"], &force);
    let mut target = sshd.trusted_target();
    target.become_root = Become::SudoN;
    let session = SshSession::connect(&target).await.unwrap();
    let marker = sshd.path("pwned");
    for value in injection_corpus(&marker) {
        let command = Command::new("printf")
            .arg("%s")
            .arg(&value)
            .render()
            .unwrap();
        let output = session.exec(&command, Stdin::Empty).await.unwrap();
        assert_eq!((output.status, output.stdout_lossy()), (0, value));
    }
    let path = sshd.path("via-sudo").to_str().unwrap().to_owned();
    let outcome = session
        .write_file_atomic(&path, b"ok\n", "root", "root", 0o600)
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    assert!(!marker.exists(), "an injected command ran");
}

// --- files ------------------------------------------------------------------------------------

fn stat(path: &Path) -> (u32, u32, u32, i64, i64) {
    let metadata = std::fs::symlink_metadata(path).unwrap();
    let mode = metadata.mode() & 0o7777;
    (
        metadata.uid(),
        metadata.gid(),
        mode,
        metadata.mtime(),
        metadata.mtime_nsec(),
    )
}

#[tokio::test]
async fn atomic_write_writes_once_then_reports_no_write_and_keeps_the_mtime() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let dir = sshd.path("site");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("app.conf");
    let path = file.to_str().unwrap();

    let first = session
        .write_file_atomic(path, b"one\n", "nobody", "nogroup", 0o640)
        .await
        .unwrap();
    assert_eq!(first, WriteOutcome::Written);
    assert_eq!(std::fs::read(&file).unwrap(), b"one\n");
    let written = stat(&file);
    assert_eq!((written.0, written.1, written.2), (65534, 65534, 0o640));

    let second = session
        .write_file_atomic(path, b"one\n", "nobody", "nogroup", 0o640)
        .await
        .unwrap();
    assert_eq!(second, WriteOutcome::Unchanged);
    assert!(!second.wrote());
    assert_eq!(
        stat(&file),
        written,
        "untouched: same owner, mode and mtime"
    );

    run("chmod", &["600", path]);
    let third = session
        .write_file_atomic(path, b"one\n", "nobody", "nogroup", 0o640)
        .await
        .unwrap();
    assert_eq!(third, WriteOutcome::AttributesUpdated);
    assert_eq!(stat(&file).2, 0o640);

    let fourth = session
        .write_file_atomic(path, b"two\n", "root", "root", 0o600)
        .await
        .unwrap();
    assert_eq!(fourth, WriteOutcome::Written);
    assert_eq!(std::fs::read(&file).unwrap(), b"two\n");
    let rewritten = stat(&file);
    assert_eq!((rewritten.0, rewritten.1, rewritten.2), (0, 0, 0o600));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["app.conf"], "no temporary file left behind");
}

#[tokio::test]
async fn atomic_write_replaces_a_symlink_instead_of_writing_through_it() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let victim = sshd.path("victim");
    std::fs::write(&victim, "precious").unwrap();
    let link = sshd.path("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let outcome = session
        .write_file_atomic(link.to_str().unwrap(), b"new", "root", "root", 0o644)
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
}

#[tokio::test]
async fn atomic_write_into_a_missing_directory_fails_naming_the_path() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let path = sshd.path("missing/dir/file");
    let error = session
        .write_file_atomic(path.to_str().unwrap(), b"x", "root", "root", 0o644)
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Failed { .. }), "{error:?}");
    assert!(
        error.to_string().contains(path.to_str().unwrap()),
        "{error}"
    );
}

#[tokio::test]
async fn read_file_returns_contents_or_none_when_absent() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    let present = sshd.path("it's here $(id)");
    std::fs::write(&present, b"\x00binary\xff").unwrap();
    let contents = session.read_file(present.to_str().unwrap()).await.unwrap();
    assert_eq!(contents.as_deref(), Some(&b"\x00binary\xff"[..]));
    let absent = session
        .read_file(sshd.path("absent").to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(absent, None);
    let directory = session
        .read_file(sshd.dir.path().to_str().unwrap())
        .await
        .unwrap_err();
    assert!(
        directory.to_string().contains("not a regular file"),
        "{directory}"
    );
}

// --- a fleet host -----------------------------------------------------------------------------

fn fleet_target(host: &support::Host) -> SshTarget {
    SshTarget {
        timeouts: quick_timeouts(),
        ..host.ssh_target(quick_timeouts().exec)
    }
}

#[tokio::test]
async fn a_fleet_host_is_reached_through_strict_known_hosts_or_its_pin() {
    let host = support::Fleet::host("t-transport-a").unwrap();
    let mut target = fleet_target(&host);
    let session = SshSession::connect(&target).await.unwrap();
    let output = session
        .exec("hostname; cat", Stdin::from("in\n"))
        .await
        .unwrap();
    assert_eq!(output.stdout_lossy(), "t-transport-a\nin\n");

    let empty = tempfile::tempdir().unwrap();
    target.host_keys.known_hosts = empty.path().join("known_hosts");
    target.host_keys.pinned = Some(host.host_key.clone());
    let pinned = SshSession::connect(&target).await.unwrap();
    assert!(pinned.exec("true", Stdin::Empty).await.unwrap().success());
}

#[tokio::test]
async fn atomic_writes_on_a_fleet_host_apply_owner_and_mode_once() {
    let host = support::Fleet::host("t-transport-a").unwrap();
    let session = SshSession::connect(&fleet_target(&host)).await.unwrap();
    let dir = "/srv/transport-atomic";
    let reset = format!("rm -rf {dir} && mkdir -p {dir}");
    session
        .exec_checked("reset", &reset, Stdin::Empty)
        .await
        .unwrap();
    let path = format!("{dir}/pool.conf");
    let stat = format!("stat -c %U:%G:%a:%Y:%i {path}");
    let before = session.exec_count();

    let first = session
        .write_file_atomic(&path, b"[shop]\n", "www-data", "www-data", 0o640)
        .await
        .unwrap();
    let written = session
        .exec_checked("stat", &stat, Stdin::Empty)
        .await
        .unwrap();
    let second = session
        .write_file_atomic(&path, b"[shop]\n", "www-data", "www-data", 0o640)
        .await
        .unwrap();
    let kept = session
        .exec_checked("stat", &stat, Stdin::Empty)
        .await
        .unwrap();

    assert_eq!(
        (first, second),
        (WriteOutcome::Written, WriteOutcome::Unchanged)
    );
    assert!(
        written.stdout_lossy().starts_with("www-data:www-data:640:"),
        "{written:?}"
    );
    assert_eq!(
        written.stdout, kept.stdout,
        "same owner, mode, mtime and inode"
    );
    assert_eq!(
        session.exec_count() - before,
        4,
        "one round trip per write and per stat"
    );
    let contents = session.read_file(&path).await.unwrap();
    assert_eq!(contents.as_deref(), Some(&b"[shop]\n"[..]));
}
