//! HTTPS under test: certificates made with openssl, requests with curl and `openssl s_client`
//! from the machine, and a real ACME CA: Debian's `pebble`, with `pebble-challtestsrv`
//! answering its DNS queries for the test domains with the host's address (pebble validates
//! HTTP-01 on port 80 of that address, through the host's own nginx).

use super::{Host, run_with_stdin};
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The machine address every host routes to (scripts/fleet's git daemon address).
pub const MACHINE: &str = "10.77.0.1";

/// Runs `openssl ARGS` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let mut command = Command::new("openssl");
    command.args(args).current_dir(dir);
    let out = run_with_stdin(command, None)?;
    ensure!(out.success(), "openssl {}: {out}", args.join(" "));
    Ok(())
}

/// A certificate authority of the test's own, in a temporary directory.
pub struct TestCa {
    pub dir: TempDir,
}

impl TestCa {
    pub fn new(name: &str) -> Result<TestCa> {
        let dir = tempfile::Builder::new().prefix("siteward-ca-").tempdir()?;
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        )?;
        Ok(TestCa { dir })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Issues `<stem>.pem` (leaf + this CA: a full chain) and `<stem>.key` for `names`
    /// (`DNS:` or `IP:` entries of subjectAltName).
    pub fn issue(&self, stem: &str, san: &str) -> Result<(PathBuf, PathBuf)> {
        let dir = self.dir.path();
        let key = format!("{stem}.key");
        let csr = format!("{stem}.csr");
        let leaf = format!("{stem}.leaf");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={stem}"),
            ],
        )?;
        std::fs::write(
            dir.join(format!("{stem}.ext")),
            format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\n"),
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "365",
                "-extfile",
                &format!("{stem}.ext"),
                "-out",
                &leaf,
            ],
        )?;
        let chain = std::fs::read_to_string(dir.join(&leaf))?
            + &std::fs::read_to_string(dir.join("ca.pem"))?;
        std::fs::write(dir.join(format!("{stem}.pem")), chain)?;
        Ok((dir.join(format!("{stem}.pem")), dir.join(key)))
    }
}

/// `curl` from the machine to `https://NAME/PATH` on the host (SNI `name`, `--resolve`),
/// trusting only `ca`; returns status and body. A certificate curl does not trust is an error.
pub fn https_get(host: &Host, name: &str, path: &str, ca: &Path) -> Result<(u16, String)> {
    let url = format!("https://{name}{path}");
    let resolve = format!("{name}:443:{}", host.address);
    let ca = ca.to_string_lossy();
    let args = ["--resolve", &resolve, "--cacert", &ca, &url];
    super::curl_response(&format!("curl {url}"), &args, 20, None)
}

/// `http://NAME/PATH` on the host without following redirects: status and `Location`.
pub fn http_head(host: &Host, name: &str, path: &str) -> Result<(u16, String)> {
    let url = format!("http://{}{path}", host.address);
    let output = Command::new("curl")
        .args([
            "--noproxy",
            "*",
            "--silent",
            "--max-time",
            "20",
            "--output",
            "/dev/null",
        ])
        .args(["--header", &format!("Host: {name}")])
        .args(["--write-out", "%{http_code} %{redirect_url}", &url])
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (status, location) = text.split_once(' ').unwrap_or((&text, ""));
    Ok((status.parse()?, location.to_owned()))
}

/// The SHA-256 fingerprint (hex, lower case) and the not-after date of the certificate the
/// host serves for `name` on port 443.
pub fn served_certificate(host: &Host, name: &str) -> Result<(String, String)> {
    let script = format!(
        "openssl s_client -connect {}:443 -servername {name} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 -enddate",
        host.address
    );
    let out = Command::new("sh").args(["-c", &script]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fingerprint = text
        .lines()
        .find_map(|l| l.strip_prefix("sha256 Fingerprint="))
        .with_context(|| format!("no certificate served for {name}: {text}"))?;
    let until = text
        .lines()
        .find_map(|l| l.strip_prefix("notAfter="))
        .unwrap_or_default();
    Ok((
        fingerprint.replace(':', "").to_lowercase(),
        until.to_owned(),
    ))
}

/// The certificate `name` serves once it is no longer `old`: a reload that does not wait for
/// its workers (certbot's hook) serves the new certificate a moment after it returns.
pub fn served_certificate_other_than(host: &Host, name: &str, old: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (served, _) = served_certificate(host, name)?;
        if served != old || Instant::now() > deadline {
            return Ok(served);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A running pebble with its DNS (pebble-challtestsrv): stopped when dropped.
pub struct Pebble {
    children: Vec<Child>,
    pub dir: TempDir,
    /// The ACME directory URL hosts reach.
    pub directory: String,
    management: String,
}

impl Pebble {
    /// Starts pebble on ports `14000 + 10 * slot` (ACME) and `+1` (management), its DNS on
    /// `+2`, resolving every name to `host`'s address; certificates valid `validity` seconds.
    /// `host` is made to trust pebble's HTTPS listener, as a server trusts a private CA.
    pub fn start(host: &Host, slot: u16, validity: u64) -> Result<Pebble> {
        let base = 14000 + 10 * slot;
        let (acme, management, dns) = (base, base + 1, base + 2);
        let ca = TestCa::new("siteward test ACME listener")?;
        let (cert, key) = ca.issue("pebble", &format!("IP:{MACHINE},DNS:localhost"))?;
        let dir = ca.dir;
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("{MACHINE}:{acme}"),
            "managementListenAddress": format!("{MACHINE}:{management}"),
            "certificate": cert, "privateKey": key,
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string())?;
        let ca_text = std::fs::read_to_string(dir.path().join("ca.pem"))?;
        trust_on_host(host, &format!("acme-{slot}"), &ca_text)?;
        let logs = dir.path().to_owned();
        let log = |name: &str| std::fs::File::create(logs.join(name));
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-https01",
                "",
            ])
            .args([
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{}", base + 3),
            ])
            .args(["-defaultIPv4", &host.address, "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log")?)
            .stderr(log("challtestsrv.err")?)
            .spawn()
            .context("failed to start pebble-challtestsrv (scripts/install-deps --tests)")?;
        let mut pebble = Pebble {
            children: vec![challtestsrv],
            directory: format!("https://{MACHINE}:{acme}/dir"),
            management: format!("https://{MACHINE}:{management}"),
            dir,
        };
        let server = Command::new("pebble")
            .arg("-config")
            .arg(pebble.dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log")?)
            .stderr(log("pebble.err")?)
            .spawn()
            .context("failed to start pebble (scripts/install-deps --tests)")?;
        pebble.children.push(server);
        pebble.wait_ready()?;
        Ok(pebble)
    }

    fn wait_ready(&self) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if self.roots().is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("pebble did not answer within 20 s: {}", self.logs())
    }

    /// pebble's issuing root, to verify what the hosts serve; written as `roots.pem`.
    pub fn roots(&self) -> Result<PathBuf> {
        let path = self.dir.path().join("roots.pem");
        let out = Command::new("curl")
            .args(["--noproxy", "*", "-sSf", "--max-time", "5", "--cacert"])
            .arg(self.dir.path().join("ca.pem"))
            .arg(format!("{}/roots/0", self.management))
            .arg("-o")
            .arg(&path)
            .output()?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(path)
    }

    /// pebble's and its DNS's logs, for failure messages.
    pub fn logs(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Makes `host` trust `ca` (a block named `label` in the host's CA bundle, replaced each time;
/// the bundle is locked, since tests of one file share hosts).
pub fn trust_on_host(host: &Host, label: &str, ca: &str) -> Result<()> {
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    let (begin, end) = (
        format!("# siteward-test-{label} begin"),
        format!("# siteward-test-{label} end"),
    );
    let script = format!(
        "exec 9>>/root/.siteward-ca-lock && flock 9 && \
         sed -i '/{begin}/,/{end}/d' {bundle} && \
         {{ echo '{begin}'; cat; echo '{end}'; }} >> {bundle}"
    );
    host.exec_with_stdin(&script, Some(ca.as_bytes())).map(drop)
}

/// Watches every process's arguments on a host for a secret's text while it runs (`grep -f`
/// reads the text from a 0600 file, so the watcher's own arguments never hold it).
pub struct CmdlineWatch {
    host: Host,
    child: Child,
}

impl CmdlineWatch {
    pub fn start(host: &Host, secret: &str) -> Result<CmdlineWatch> {
        host.exec_with_stdin(
            "umask 077; cat > /root/.siteward-canary; rm -f /root/.siteward-canary-found /root/.siteward-canary-stop",
            Some(secret.as_bytes()),
        )?;
        let script = "while [ ! -e /root/.siteward-canary-stop ]; do \
             for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <\"$f\" 2>/dev/null | grep -qFf /root/.siteward-canary && echo \"$f\" >> /root/.siteward-canary-found; done; sleep 0.1; done";
        let child = Command::new(super::fleet_script())
            .args(["exec", &host.name, "bash", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(CmdlineWatch {
            host: host.clone(),
            child,
        })
    }

    /// Stops watching; an error names the processes whose arguments held the secret.
    pub fn finish(mut self) -> Result<()> {
        self.host.exec("touch /root/.siteward-canary-stop")?;
        let _ = self.child.wait();
        let found = self.host.exec(
            "cat /root/.siteward-canary-found 2>/dev/null; rm -f /root/.siteward-canary*; true",
        )?;
        ensure!(
            found.trim().is_empty(),
            "the secret was in process arguments: {found}"
        );
        Ok(())
    }
}
