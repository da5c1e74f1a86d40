//! Storage migration between two fleet hosts (`t-migfiles-a` → `t-migfiles-b`): the copy, its
//! verification, convergence on a second run, and refusals. Each test has its own roots.

mod support;

use siteward::migrate::files::{self, FilesError, STAGING_DIR};
use siteward::transport::{SshSession, SshTarget};
use support::{Fleet, Host};

const OWNER: &str = "www-data";

fn paths() -> Vec<String> {
    vec![
        "shared/storage/app/public".to_owned(),
        "shared/storage/logs".to_owned(),
    ]
}

/// A storage tree with many small files, one large random file, odd names, symlinks inside the
/// site and a 0600 file, under `root`.
const TREE: &str = r#"
set -e
root=$1
big_mb=$2
rm -rf "$root"
public="$root/shared/storage/app/public"
mkdir -p "$public/many" "$root/shared/storage/logs" "$root/shared/storage/framework"
for i in $(seq 1 2000); do printf 'file %d\n' "$i" > "$public/many/f$i.txt"; done
head -c "${big_mb}000000" /dev/urandom > "$public/big.bin"
printf a > "$public/with space.txt"
printf b > "$public/new"$'\n'"line.txt"
printf c > "$public/bad"$'\xff'"byte.bin"
printf d > "$public/-leading-dash"
mkdir "$public/dir with"$'\n'"newline"
printf e > "$public/dir with"$'\n'"newline/inner"
printf s > "$public/secret.txt"
chmod 600 "$public/secret.txt"
ln -s many/f1.txt "$public/link-to-f1"
ln -s ../../framework "$public/framework-link"
printf 'log line\n' > "$root/shared/storage/logs/laravel.log"
"#;

/// A fingerprint of the trees under `root` computed on the host itself (types, modes, names,
/// link targets, then every file's sha256), NUL-safe and sorted, plus the number of entries.
fn fingerprint(host: &Host, root: &str) -> String {
    let script = format!(
        "cd {root} && {{ find {p} -printf '%y %m %p\\0%l\\0' | sort -z | sha256sum; \
         find {p} -type f -print0 | sort -z | xargs -0 sha256sum -z -- | sha256sum; \
         find {p} | wc -l; }}",
        p = paths().join(" ")
    );
    host.exec(&script).unwrap()
}

fn target(host: &Host) -> SshTarget {
    host.ssh_target(siteward::transport::Timeouts::default().exec)
}

struct Pair {
    a: Host,
    b: Host,
    source: SshSession,
    target: SshSession,
}

async fn pair() -> Pair {
    let a = Fleet::host("t-migfiles-a").unwrap();
    let b = Fleet::host("t-migfiles-b").unwrap();
    let source = SshSession::connect(&target(&a)).await.unwrap();
    let target = SshSession::connect(&target(&b)).await.unwrap();
    Pair {
        a,
        b,
        source,
        target,
    }
}

impl Pair {
    /// Makes the tree on A under `/srv/migfiles-NAME/src` and clears B's root; returns the roots.
    fn prepare(&self, name: &str, big_mb: u32) -> (String, String) {
        let source_root = format!("/srv/migfiles-{name}/src");
        let target_root = format!("/srv/migfiles-{name}/dst");
        let tree = format!("bash -c {} siteward {source_root} {big_mb}", quote(TREE));
        self.a.exec(&tree).unwrap();
        self.b
            .exec(&format!("rm -rf {target_root} && mkdir -p {target_root}"))
            .unwrap();
        (source_root, target_root)
    }

    async fn copy(&self, source_root: &str, target_root: &str) -> files::FilesCopyReport {
        let copied = files::copy_paths(
            &self.source,
            &self.target,
            source_root,
            target_root,
            &paths(),
            OWNER,
        )
        .await;
        copied.unwrap()
    }

    fn assert_equal(&self, source_root: &str, target_root: &str) {
        assert_eq!(
            fingerprint(&self.a, source_root),
            fingerprint(&self.b, target_root)
        );
        let leftovers = self.b.exec(&format!(
            "find {target_root} -name '.siteward-*' | wc -l; \
             cd {target_root} && find {} ! -user {OWNER} | wc -l",
            paths().join(" ")
        ));
        assert_eq!(leftovers.unwrap(), "0\n0\n", "no staging left, all owned");
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[tokio::test]
async fn a_storage_tree_with_odd_names_modes_and_symlinks_arrives_verified() {
    let pair = pair().await;
    let (source_root, target_root) = pair.prepare("tree", 50);

    let report = pair.copy(&source_root, &target_root).await;

    assert!(report.verified);
    assert_eq!(report.files, 2000 + 8);
    assert_eq!(report.symlinks, 2);
    assert!(report.bytes > 50_000_000, "{report:?}");
    assert_eq!(report.checksums.len(), 64);
    pair.assert_equal(&source_root, &target_root);
    let secret = format!("stat -c %a {target_root}/shared/storage/app/public/secret.txt");
    assert_eq!(pair.b.exec(&secret).unwrap(), "600\n");
    let link = format!("readlink {target_root}/shared/storage/app/public/framework-link");
    assert_eq!(pair.b.exec(&link).unwrap(), "../../framework\n");
    let seconds = report.duration.as_secs_f64();
    eprintln!(
        "copied {} files, {} bytes ({} on the wire, {:?}) in {seconds:.2} s: {:.1} MB/s",
        report.files,
        report.bytes,
        report.wire_bytes,
        report.codec,
        report.bytes as f64 / seconds / 1e6
    );
}

#[tokio::test]
async fn copying_again_converges_after_the_source_changed_and_a_cut_off_run() {
    let pair = pair().await;
    let (source_root, target_root) = pair.prepare("again", 1);
    let first = pair.copy(&source_root, &target_root).await;

    let public = format!("{source_root}/shared/storage/app/public");
    let change = format!(
        "printf changed > {public}/many/f2.txt && rm {public}/many/f3.txt && \
         printf new > {public}/many/added.txt"
    );
    pair.a.exec(&change).unwrap();
    let cut_off = format!(
        "mkdir -p {target_root}/{STAGING_DIR}/shared/storage/app/public && \
         touch {target_root}/{STAGING_DIR}/shared/storage/app/public/half && \
         mkdir -p {target_root}/shared/storage/app/.siteward-old-public"
    );
    pair.b.exec(&cut_off).unwrap();
    let second = pair.copy(&source_root, &target_root).await;

    pair.assert_equal(&source_root, &target_root);
    assert_eq!(second.files, first.files);
    assert_ne!(second.checksums, first.checksums);
    let gone = format!("{target_root}/shared/storage/app/public/many/f3.txt");
    assert!(!pair.b.exists(&gone).unwrap());
}

#[tokio::test]
async fn verification_names_the_files_changed_on_the_target() {
    let pair = pair().await;
    let (source_root, target_root) = pair.prepare("verify", 1);
    pair.copy(&source_root, &target_root).await;
    let verified = files::verify_paths(
        &pair.source,
        &pair.target,
        &source_root,
        &target_root,
        &paths(),
    )
    .await
    .unwrap();
    assert_eq!(verified.files, 2008);

    let public = format!("{target_root}/shared/storage/app/public");
    let corrupt =
        format!("printf X >> \"{public}/new\"$'\\n'\"line.txt\" && chmod 644 {public}/secret.txt");
    pair.b.exec(&corrupt).unwrap();
    let error = files::verify_paths(
        &pair.source,
        &pair.target,
        &source_root,
        &target_root,
        &paths(),
    )
    .await
    .unwrap_err();

    let FilesError::Mismatch { count, paths, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*count, 2, "{error}");
    let message = error.to_string();
    assert!(message.contains(r#"new\nline.txt"#), "{message}");
    assert!(message.contains("secret.txt"), "{message}");
    assert_eq!(paths.len(), 2);
}

#[tokio::test]
async fn a_symlink_pointing_outside_the_site_is_refused_before_anything_moves() {
    let pair = pair().await;
    let (source_root, target_root) = pair.prepare("outside", 0);
    let public = format!("{source_root}/shared/storage/app/public");
    pair.a
        .exec(&format!(
            "ln -s /etc/passwd {public}/passwd && ln -s ../../../../.. {public}/up"
        ))
        .unwrap();

    let error = files::copy_paths(
        &pair.source,
        &pair.target,
        &source_root,
        &target_root,
        &paths(),
        OWNER,
    )
    .await
    .unwrap_err();

    let FilesError::OutsideSymlinks { links, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(links.len(), 2, "{error}");
    assert!(error.to_string().contains("passwd"), "{error}");
    let untouched = format!("ls -A {target_root} | wc -l");
    assert_eq!(pair.b.exec(&untouched).unwrap(), "0\n");
}
