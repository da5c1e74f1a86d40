//! siteward within a server's limits: sshd's `MaxSessions` (channels per connection) and
//! `MaxStartups` (connections being set up at once), on throwaway sshds set lower than Debian's
//! defaults, and the fleet's stock ones.

mod support;

use std::time::{Duration, Instant};

use siteward::transport::{SshError, SshSession, Stdin, Transport, reserve_pair};
use support::sshd::Sshd;

/// Runs `count` commands on `session` at once; each sleeps a little and prints its number.
async fn run_at_once(session: &SshSession, count: usize) -> Vec<String> {
    let commands = (0..count).map(|n| {
        let session = session.clone();
        async move {
            let output = session
                .exec(&format!("sleep 0.1; echo {n}"), Stdin::Empty)
                .await
                .unwrap_or_else(|error| panic!("command {n}: {error}"));
            assert!(output.success(), "command {n}: {output:?}");
            output.stdout_lossy()
        }
    });
    futures::future::join_all(commands).await
}

fn numbered(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{n}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_allowing_two_sessions_runs_many_commands_queued_behind_them() {
    let sshd = Sshd::start_with(&["ed25519"], "MaxSessions 2");
    let session = sshd.session().await;
    assert_eq!(run_at_once(&session, 24).await, numbered(24));
    let (limit, most_open) = session.channel_usage();
    assert_eq!(limit, 2, "the server's limit is learned");
    assert!(most_open <= 2, "{most_open} channels were open at once");
    // Learned once, the limit is kept: a second burst is queued, not refused.
    assert_eq!(run_at_once(&session, 8).await, numbered(8));
    assert_eq!(session.channel_usage().0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_allowing_one_session_runs_commands_one_at_a_time() {
    let sshd = Sshd::start_with(&["ed25519"], "MaxSessions 1");
    let session = sshd.session().await;
    assert_eq!(run_at_once(&session, 6).await, numbered(6));
    assert_eq!(session.channel_usage(), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_server_is_never_asked_for_more_than_it_allows() {
    let sshd = Sshd::start(&["ed25519"]);
    let session = sshd.session().await;
    assert_eq!(run_at_once(&session, 40).await, numbered(40));
    let (limit, most_open) = session.channel_usage();
    assert!(limit <= 10 && most_open <= limit, "{limit} / {most_open}");
}

/// Pipes `count` streams at once from `source` (`head -c`) into `target` (`wc -c`), each on
/// the pair of channels [`reserve_pair`] takes, as migrations do.
async fn streams_at_once(source: &SshSession, target: &SshSession, count: usize) -> Vec<String> {
    let streams = (0..count).map(|n| async move {
        let (source_slot, target_slot) = match reserve_pair(source, target).await {
            Ok(slots) => slots,
            Err(error) => return format!("error: {error}"),
        };
        let (writer, reader) = tokio::io::duplex(64 * 1024);
        let sending = async move {
            let mut writer = writer;
            let command = format!("head -c {} /dev/zero", 100_000 * (n + 1));
            source
                .exec_streaming_in(source_slot, &command, Stdin::Empty, &mut writer)
                .await
        };
        let receiving = target.exec_in(target_slot, "wc -c", Stdin::reader(reader));
        let (sent, received) = tokio::join!(sending, receiving);
        assert_eq!(sent.unwrap().status, 0);
        received.unwrap().stdout_lossy().trim().to_owned()
    });
    futures::future::join_all(streams).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_between_two_servers_allowing_one_session_each_never_wait_on_each_other() {
    let a = Sshd::start_with(&["ed25519"], "MaxSessions 1\nLogLevel DEBUG1");
    let b = Sshd::start_with(&["ed25519"], "MaxSessions 1\nLogLevel DEBUG1");
    let (source, target) = (a.session().await, b.session().await);
    let reverse = (target.clone(), source.clone());
    // Streams both ways at once: taking one end's channel, then waiting for the other's, would
    // deadlock here.
    let forward = streams_at_once(&source, &target, 4);
    let backward = streams_at_once(&reverse.0, &reverse.1, 4);
    let both = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(forward, backward)
    });
    let (forward, backward) = match both.await {
        Ok(done) => done,
        Err(_) => panic!("the streams did not finish:\n{}\n{}", a.log(), b.log()),
    };
    let expected: Vec<String> = (1..=4).map(|n| (n * 100_000).to_string()).collect();
    assert_eq!(
        (&forward, &backward),
        (&expected, &expected),
        "{}\n-----\n{}",
        a.log(),
        b.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_every_session_fails_naming_max_sessions() {
    let sshd = Sshd::start_with(&["ed25519"], "MaxSessions 0");
    let session = sshd.session().await;
    let started = Instant::now();
    let error = session.exec("true", Stdin::Empty).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            siteward::transport::TransportError::Ssh(SshError::SessionsRefused { .. })
        ),
        "{message}"
    );
    assert!(message.contains("MaxSessions"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// A connection to sshd that got its banner (sshd did not drop it) and goes no further.
fn unauthenticated_connection(port: u16) -> std::net::TcpStream {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut banner = [0; 4];
        if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
            return stream;
        }
        assert!(Instant::now() < deadline, "sshd never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_past_max_startups_is_tried_again() {
    let sshd = Sshd::start_with(&["ed25519"], "MaxStartups 1\nLoginGraceTime 30");
    // An unauthenticated connection holds the one startup sshd allows until it is closed.
    let blocker = unauthenticated_connection(sshd.port);
    let releasing = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(blocker);
    });
    let started = Instant::now();
    let session = SshSession::connect(&sshd.trusted_target())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "connected past the blocker? {}",
        sshd.log()
    );
    assert!(session.exec("true", Stdin::Empty).await.unwrap().success());
    releasing.join().unwrap();
    assert!(
        sshd.log().contains("past MaxStartups"),
        "sshd dropped no connection: {}",
        sshd.log()
    );
}

#[test]
fn fleet_hosts_run_sshd_with_debians_stock_limits() {
    let host = support::Fleet::host("t-sessions-a").unwrap();
    let effective = host
        .exec("sshd -T -C user=root,host=client,addr=10.77.0.1")
        .unwrap();
    let setting = |name: &str| {
        effective
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .map(str::to_owned)
    };
    assert_eq!(setting("maxsessions").as_deref(), Some("10"));
    assert_eq!(setting("maxstartups").as_deref(), Some("10:30:100"));
    let hostname = host.exec("hostname").unwrap();
    let hosts = host.exec("getent hosts \"$(hostname)\"").unwrap();
    assert!(hosts.contains(&host.address), "{hostname}: {hosts}");
}
