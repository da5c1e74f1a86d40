//! `siteward export SITE -o FILE` and `siteward import FILE [--specs DIR]`.

use super::backup::{SiteAccess, refuse_unplannable, site_of};
use super::reconcile::{PrepareOptions, prepare, runtime, secret_references};
use super::{Context, Exit, hinted};
use crate::apply::lock::LockOwner;
use crate::backup::bundle::{self, BundleError, Hashing, Manifest, Member};
use crate::backup::restore::{BundleData, RestoreJob, RestorePlan, Source, restore_site};
use crate::cli::{ExportArgs, ImportArgs, ReportFormat};
use crate::migrate::launch::server_spec;
use crate::migrate::preflight::human_bytes;
use crate::migrate::progress::{Meter, Progress};
use crate::spec::secret::{ResolvedSecrets, Secret, SecretRef};
use crate::spec::site::EnvValue;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;

/// A directory beside `path` for the parts of a bundle, removed when dropped.
struct Parts(PathBuf);

impl Parts {
    fn beside(path: &Path, suffix: &str) -> anyhow::Result<Self> {
        let dir = path.with_extension(suffix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Parts(dir))
    }
}

impl Drop for Parts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a site's bundle: its spec, database, storage and `.env` without a secret value.
pub fn export(ctx: &Context, args: ExportArgs) -> anyhow::Result<Exit> {
    runtime()?.block_on(async {
        let access =
            SiteAccess::open(ctx, &args.specs.specs, &args.site, args.accept_new_host_keys).await?;
        let parts = Parts::beside(&args.output, "parts")?;
        let remote = access.remote(Progress::detect());
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        if access.backup.layout.database.is_some() {
            files.push((bundle::DATABASE.into(), parts.0.join(bundle::DATABASE)));
        }
        files.push((bundle::STORAGE.into(), parts.0.join(bundle::STORAGE)));
        for (name, path) in &files {
            let action = if name == bundle::DATABASE { "dump-database" } else { "dump-files" };
            let file = tokio::fs::File::create(path).await?;
            let meter = Progress::detect().meter(&format!("export {name}"), None);
            let mut out = Metered { inner: file, meter: &meter };
            remote
                .dump(action, &mut out)
                .await
                .map_err(|e| failed(&access, "export", e))?;
            tokio::io::AsyncWriteExt::flush(&mut out.inner).await?;
            meter.finish();
        }
        let mut env = Vec::new();
        remote
            .dump("dump-env", &mut env)
            .await
            .map_err(|e| failed(&access, "export", e))?;
        let site = site_of(&access.loaded, &args.site)?;
        let (redacted, references) = redact(&access, site, &String::from_utf8_lossy(&env));
        let env_path = parts.0.join(bundle::ENV);
        std::fs::write(&env_path, &redacted)?;
        files.push((bundle::ENV.into(), env_path));
        let members = files
            .iter()
            .map(|(name, path)| hash_member(name, path))
            .collect::<anyhow::Result<Vec<Member>>>()?;
        let manifest = Manifest {
            format_version: bundle::FORMAT_VERSION,
            site: args.site.clone(),
            server: access.server.clone(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            spec: serde_json::json!({
                "apiVersion": crate::spec::document::API_VERSION,
                "kind": "Site",
                "metadata": {"name": site.name.as_str()},
                "spec": site.spec,
            }),
            members,
            secrets: references,
        };
        bundle::write(&args.output, &manifest, &files)?;
        let bytes: u64 = manifest.members.iter().map(|m| m.size).sum();
        println!(
            "Exported {} from {} to {}: {} in {} members.",
            args.site,
            access.server,
            args.output.display(),
            human_bytes(bytes),
            manifest.members.len()
        );
        if !manifest.secrets.is_empty() {
            println!(
                "Its `.env` holds references in place of secret values; set them before importing: {}",
                manifest.secrets.join(", ")
            );
        }
        Ok(Exit::Success)
    })
}

/// The `.env` with every value of a secret the site's specs reference replaced by the
/// reference, and keys whose names say secret by `env:<SITE>_<KEY>`.
fn redact(access: &SiteAccess, site: &crate::spec::Site, env: &str) -> (String, Vec<String>) {
    let spec_secrets: BTreeMap<String, SecretRef> = site
        .spec
        .env
        .iter()
        .filter_map(|(key, value)| match value {
            EnvValue::Secret(reference) => Some((key.to_string(), reference.clone())),
            _ => None,
        })
        .collect();
    let known = secret_references(&access.loaded, &[site]);
    bundle::redact_env(
        env,
        site.name.as_str(),
        &spec_secrets,
        &access.secrets,
        &known,
    )
}

fn hash_member(name: &str, path: &Path) -> anyhow::Result<Member> {
    let mut file = std::fs::File::open(path)?;
    let mut hashing = Hashing::new(std::io::sink());
    std::io::copy(&mut file, &mut hashing)?;
    Ok(hashing.member(name).0)
}

fn failed(
    access: &SiteAccess,
    verb: &str,
    error: crate::backup::remote::BackupError,
) -> anyhow::Error {
    let text = access.secrets.scrub(&crate::apply::error_text(&error));
    hinted(
        format!("the {verb} of `{}` failed: {text}", access.site),
        "see the server's error above; nothing was written",
    )
}

/// A file that counts what is written into a meter.
struct Metered<'m, W> {
    inner: W,
    meter: &'m Meter,
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Metered<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &polled {
            self.meter.add(*written as u64);
        }
        polled
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Checks a bundle whole, resolves its references, shows the plan, then brings the site onto
/// the server its spec in `--specs` names.
pub fn import(ctx: &Context, args: ImportArgs) -> anyhow::Result<Exit> {
    runtime()?.block_on(import_async(ctx, args))
}

async fn import_async(ctx: &Context, args: ImportArgs) -> anyhow::Result<Exit> {
    let parts = Parts::beside(&args.file, "import")?;
    let (manifest, members) = bundle::verify(&args.file, &parts.0).map_err(refused)?;
    let env_text = match members.get(bundle::ENV) {
        Some(path) => std::fs::read_to_string(path)?,
        None => String::new(),
    };
    let env = resolved_env(&env_text)?;
    let sites = [manifest.site.clone()];
    let prepared = prepare(
        ctx,
        PrepareOptions {
            specs: &args.specs.specs,
            sites: &sites,
            accept_new_host_keys: args.accept_new_host_keys,
            prune: false,
        },
    )
    .await
    .map_err(|error| error.context(format!(
        "the bundle's site `{}` needs its spec (and its server's) under --specs; the manifest holds the spec it was exported with",
        manifest.site
    )))?;
    let site = site_of(&prepared.loaded, &manifest.site)?;
    let server = site.spec.server.to_string();
    let mut plan = prepared.plan.clone();
    plan.sites
        .retain(|s| s.site == manifest.site && s.server == server);
    let site_plan = plan
        .sites
        .first_mut()
        .context("the plan has no entry for the site")?;
    refuse_unplannable(site_plan)?;
    let label = format!("bundle {}", args.file.display());
    site_plan.restore = Some(RestorePlan {
        run: String::new(),
        time: format!("unix time {}", manifest.created_unix),
        from_server: manifest.server.clone(),
        snapshots: label.clone(),
        bytes: manifest.members.iter().map(|m| m.size).sum(),
        reason: format!(
            "`siteward import {}`: every member's checksum verified",
            args.file.display()
        ),
    });
    print!(
        "{}",
        super::plan::render_plan(
            &plan,
            ReportFormat::Text,
            ctx.color_stdout,
            &prepared.secrets
        )
    );
    super::apply::confirm(args.auto_approve)?;
    let data = BundleData {
        label,
        database: members.get(bundle::DATABASE).cloned(),
        storage: members.get(bundle::STORAGE).cloned(),
        env,
    };
    let site_plan = &plan.sites[0];
    let (Some(session), Some(server_spec)) = (
        prepared.sessions.get(&server),
        server_spec(&prepared.loaded, &server),
    ) else {
        anyhow::bail!("server `{server}` is not connected");
    };
    let observed = prepared
        .observed
        .get(&server)
        .and_then(|s| s.sites.get(&manifest.site))
        .cloned()
        .unwrap_or_default();
    let settings = crate::backup::settings::effective(site, Some(server_spec)).and_then(Result::ok);
    let owner = LockOwner::this_process("siteward import");
    let job = RestoreJob {
        transport: session,
        server_name: &server,
        server: server_spec,
        site,
        plan: site_plan,
        observed: &observed,
        source: Source::Bundle(&data),
        settings: settings.as_ref(),
        secrets: &prepared.secrets,
        owner: &owner,
        progress: Progress::detect(),
    };
    let outcomes = [restore_site(&job).await];
    super::apply::report(&outcomes, &prepared);
    super::record::apply_done(ctx, &prepared, &plan, &outcomes);
    if crate::apply::all_ok(&outcomes) {
        Ok(Exit::Success)
    } else {
        Err(hinted(
            "the import failed",
            "see the error above; the bundle is staged whole before anything changes, and the import can be run again",
        ))
    }
}

fn refused(error: BundleError) -> anyhow::Error {
    hinted(
        format!(
            "the bundle is refused: {}",
            crate::apply::error_text(&error)
        ),
        "nothing was changed; export the site again, or copy the bundle again from where it was made",
    )
}

/// The bundle's `.env` with its references resolved from the environment or files; every
/// missing one named at once.
fn resolved_env(text: &str) -> anyhow::Result<Secret> {
    let references = bundle::env_references(text);
    let secrets = ResolvedSecrets::resolve(references.iter()).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        hinted(
            format!(
                "the bundle's `.env` references {} secret(s) that could not be read:\n  {}",
                list.len(),
                list.join("\n  ")
            ),
            "export the variables (or create the files) the manifest's `secrets` lists; nothing was changed",
        )
    })?;
    bundle::resolve_env(text, &secrets)
        .map(Secret::new)
        .context("a reference of the bundle's `.env` was not resolved")
}
