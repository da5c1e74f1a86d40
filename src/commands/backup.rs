//! `siteward backup SITE`, `siteward backups SITE` and `siteward restore SITE`.

use super::reconcile::{
    PrepareOptions, Prepared, connect_all, load_specs, prepare, resolve_secrets, runtime,
    select_sites,
};
use super::{Context, Exit, hinted};
use crate::apply::SiteOutcome;
use crate::apply::lock::LockOwner;
use crate::backup::remote::Remote;
use crate::backup::resource::{BackupDesired, desired_all};
use crate::backup::restore::{RestoreJob, RestorePlan, choose, restore_site};
use crate::backup::snapshots::Run;
use crate::cli::{BackupArgs, BackupsArgs, OutputFormat, ReportFormat, RestoreArgs};
use crate::migrate::launch::server_spec;
use crate::migrate::preflight::human_bytes;
use crate::migrate::progress::Progress;
use crate::plan::SitePlan;
use crate::spec::secret::ResolvedSecrets;
use crate::spec::{Loaded, Site};
use crate::transport::SshSession;
use anyhow::Context as _;
use std::path::PathBuf;

/// One site, its server connected, what its backups need.
pub(super) struct SiteAccess {
    pub loaded: Loaded,
    pub site: String,
    pub server: String,
    pub session: SshSession,
    pub secrets: ResolvedSecrets,
    pub backup: BackupDesired,
}

impl SiteAccess {
    /// Loads the specs, resolves the site's secrets and connects to its server.
    pub async fn open(
        ctx: &Context,
        specs: &[PathBuf],
        site: &str,
        accept_new: bool,
    ) -> anyhow::Result<Self> {
        let loaded = load_specs(ctx, specs)?;
        let (secrets, server) = {
            let sites = select_sites(&loaded, &[site.to_owned()])?;
            (
                resolve_secrets(&loaded, &sites)?,
                sites[0].spec.server.to_string(),
            )
        };
        let (mut sessions, unreachable) =
            connect_all(&loaded, std::slice::from_ref(&server), accept_new).await?;
        let Some(session) = sessions.remove(&server) else {
            let why = unreachable.get(&server).cloned().unwrap_or_default();
            return Err(hinted(
                format!("server `{server}` does not answer: {why}"),
                "bring it back, or point the site at a server that answers and apply: a site whose server is gone is restored from its latest backup",
            ));
        };
        let backup = desired_all(&loaded)
            .remove(site)
            .context("the site has no backup settings")?;
        Ok(SiteAccess {
            site: site.to_owned(),
            loaded,
            server,
            session,
            secrets,
            backup,
        })
    }

    pub fn remote(&self, progress: Progress) -> Remote<'_, SshSession> {
        Remote {
            transport: &self.session,
            server: &self.server,
            layout: &self.backup.layout,
            settings: self.backup.settings.as_ref(),
            secrets: &self.secrets,
            progress,
        }
    }

    fn require_backups(&self) -> anyhow::Result<()> {
        if self.backup.settings.is_some() {
            return Ok(());
        }
        Err(hinted(
            format!("site `{}` has no backups", self.site),
            "add `backup:` with `repository` and `password` to its spec (or to its Server's), then apply",
        ))
    }
}

/// `siteward backup SITE`: one run now, as the server's schedule makes them.
pub fn backup(ctx: &Context, args: BackupArgs) -> anyhow::Result<Exit> {
    runtime()?.block_on(async {
        let access = SiteAccess::open(
            ctx,
            &args.specs.specs,
            &args.site,
            args.accept_new_host_keys,
        )
        .await?;
        access.require_backups()?;
        let remote = access.remote(Progress::detect());
        let result = remote
            .backup(None)
            .await
            .map_err(|e| backup_failed(&access, e))?;
        println!(
            "Backed up {} on {}: {}, {} read.",
            access.site,
            access.server,
            result.label(),
            human_bytes(result.bytes)
        );
        if args.check {
            let out = remote
                .check(true)
                .await
                .map_err(|e| backup_failed(&access, e))?;
            println!("Repository check: {}", out.lines().last().unwrap_or("done"));
        }
        Ok(Exit::Success)
    })
}

fn backup_failed(access: &SiteAccess, error: crate::backup::remote::BackupError) -> anyhow::Error {
    let text = access.secrets.scrub(&crate::apply::error_text(&error));
    hinted(
        format!("the backup of `{}` failed: {text}", access.site),
        "check the repository URL, the credentials (S3 keys, or the SSH key and host key of an SFTP store) and the password the spec references; `siteward backups SITE` lists what the repository holds",
    )
}

/// `siteward backups SITE`: the runs in the site's repository, oldest first.
pub fn backups(ctx: &Context, args: BackupsArgs) -> anyhow::Result<Exit> {
    runtime()?.block_on(async {
        let access = SiteAccess::open(
            ctx,
            &args.specs.specs,
            &args.site,
            args.accept_new_host_keys,
        )
        .await?;
        access.require_backups()?;
        let runs = access
            .remote(Progress::Off)
            .runs()
            .await
            .map_err(|e| backup_failed(&access, e))?;
        match args.format {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
            OutputFormat::Text => print!("{}", runs_table(&runs)),
        }
        Ok(Exit::Success)
    })
}

/// The runs as a table.
fn runs_table(runs: &[Run]) -> String {
    if runs.is_empty() {
        return "No backups yet.\n".to_owned();
    }
    let mut out = format!(
        "{:<22} {:<12} {:<10} {:<10} {:>10}\n",
        "TIME", "SERVER", "DATABASE", "FILES", "SIZE"
    );
    for run in runs {
        let id = |part: &Option<crate::backup::snapshots::Part>| {
            part.as_ref().map_or("-".to_owned(), |p| p.short_id.clone())
        };
        out.push_str(&format!(
            "{:<22} {:<12} {:<10} {:<10} {:>10}\n",
            run.time.get(..19).unwrap_or(&run.time).replace('T', " "),
            run.server,
            id(&run.database),
            id(&run.files),
            human_bytes(run.bytes())
        ));
    }
    out
}

/// `siteward restore SITE [--snapshot ID]`: the plan (with anything else the site lacks on its
/// server), a confirmation, then the restore under the site's lock.
pub fn restore(ctx: &Context, args: RestoreArgs) -> anyhow::Result<Exit> {
    runtime()?.block_on(restore_async(ctx, args))
}

async fn restore_async(ctx: &Context, args: RestoreArgs) -> anyhow::Result<Exit> {
    let sites = [args.site.clone()];
    let mut prepared = prepare(
        ctx,
        PrepareOptions {
            specs: &args.specs.specs,
            sites: &sites,
            accept_new_host_keys: args.accept_new_host_keys,
            prune: false,
        },
    )
    .await?;
    let run = chosen_run(&prepared, &args).await?;
    let server = site_of(&prepared.loaded, &args.site)?
        .spec
        .server
        .to_string();
    let mut plan = prepared.plan.clone();
    plan.sites
        .retain(|s| s.site == args.site && s.server == server);
    let Some(site_plan) = plan.sites.iter_mut().find(|s| s.site == args.site) else {
        anyhow::bail!("the plan has no entry for site `{}`", args.site);
    };
    refuse_unplannable(site_plan)?;
    site_plan.restore = Some(RestorePlan::of(
        &run,
        format!("`siteward restore {}`", args.site),
    ));
    prepared.restores.insert(args.site.clone(), run);
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
    let owner = LockOwner::this_process("siteward restore");
    let outcome = restore_planned(&prepared, &plan.sites[0], &owner).await;
    let outcomes = [outcome];
    super::apply::report(&outcomes, &prepared);
    super::record::apply_done(ctx, &prepared, &plan, &outcomes);
    finish(&outcomes, "the restore failed")
}

pub(super) fn refuse_unplannable(site_plan: &SitePlan) -> anyhow::Result<()> {
    if !site_plan.blocked_by.is_empty() {
        return Err(hinted(
            format!(
                "site `{}` cannot be planned: {}",
                site_plan.site,
                site_plan.blocked_by.join("; ")
            ),
            "fix what the plan names, then restore again; nothing was changed",
        ));
    }
    if let Some(migration) = &site_plan.migration {
        return Err(hinted(
            format!(
                "site `{}` is recorded on `{}` while its spec names `{}`",
                site_plan.site, migration.source, migration.target
            ),
            "`siteward apply` moves it with its data; restore it once it is where its spec says",
        ));
    }
    Ok(())
}

/// The run `--snapshot` names, or the latest complete one, listed through the site's server.
async fn chosen_run(prepared: &Prepared, args: &RestoreArgs) -> anyhow::Result<Run> {
    let site = site_of(&prepared.loaded, &args.site)?;
    let server = site.spec.server.as_str();
    let session = prepared.sessions.get(server).ok_or_else(|| {
        hinted(
            format!("server `{server}` does not answer"),
            "a restore goes onto the site's server: point `server:` at one that answers",
        )
    })?;
    let backups = desired_all(&prepared.loaded);
    let desired = backups
        .get(site.name.as_str())
        .context("no backup settings")?;
    let remote = Remote {
        transport: session,
        server,
        layout: &desired.layout,
        settings: desired.settings.as_ref(),
        secrets: &prepared.secrets,
        progress: Progress::Off,
    };
    let runs = remote.runs().await.map_err(|error| {
        hinted(
            format!(
                "the backups of `{}` could not be listed: {}",
                args.site,
                prepared.secrets.scrub(&crate::apply::error_text(&error))
            ),
            "check the repository, its credentials and its password; nothing was changed",
        )
    })?;
    let with_database = desired.layout.database.is_some();
    choose(&runs, args.snapshot.as_deref(), with_database)
        .cloned()
        .ok_or_else(|| match &args.snapshot {
            Some(id) => hinted(
                format!("no backup run of `{}` has a snapshot `{id}`", args.site),
                format!("`siteward backups {}` lists them", args.site),
            ),
            None => hinted(
                format!("the repository holds no complete backup of `{}`", args.site),
                format!("`siteward backup {}` makes one", args.site),
            ),
        })
}

pub(super) fn site_of<'l>(loaded: &'l Loaded, name: &str) -> anyhow::Result<&'l Site> {
    loaded
        .sites
        .iter()
        .map(|s| &s.item)
        .find(|s| s.name.as_str() == name)
        .ok_or_else(|| anyhow::anyhow!("no spec names site `{name}`"))
}

/// Runs a planned restore (a site plan with `restore`), for `restore` and `apply`.
pub(super) async fn restore_planned(
    prepared: &Prepared,
    site_plan: &SitePlan,
    owner: &LockOwner,
) -> SiteOutcome {
    let failed = |error: String| SiteOutcome {
        site: site_plan.site.clone(),
        server: site_plan.server.clone(),
        ok: false,
        millis: 0,
        steps: Vec::new(),
        error: Some(error),
        migration: None,
    };
    let backups = desired_all(&prepared.loaded);
    let settings = backups
        .get(&site_plan.site)
        .and_then(|b| b.settings.as_ref());
    let site = site_of(&prepared.loaded, &site_plan.site).ok();
    let (Some(site), Some(settings), Some(run)) =
        (site, settings, prepared.restores.get(&site_plan.site))
    else {
        return failed("the restore's run or settings are unknown".into());
    };
    let (Some(session), Some(server)) = (
        prepared.sessions.get(&site_plan.server),
        server_spec(&prepared.loaded, &site_plan.server),
    ) else {
        return failed(format!("server `{}` is not connected", site_plan.server));
    };
    let observed = prepared
        .observed
        .get(&site_plan.server)
        .and_then(|s| s.sites.get(&site_plan.site))
        .cloned()
        .unwrap_or_default();
    let job = RestoreJob {
        transport: session,
        server_name: &site_plan.server,
        server,
        site,
        plan: site_plan,
        observed: &observed,
        source: crate::backup::restore::Source::Backup(run),
        settings: Some(settings),
        secrets: &prepared.secrets,
        owner,
        progress: Progress::detect(),
    };
    restore_site(&job).await
}

fn finish(outcomes: &[SiteOutcome], what: &str) -> anyhow::Result<Exit> {
    if crate::apply::all_ok(outcomes) {
        Ok(Exit::Success)
    } else {
        Err(hinted(
            what.to_owned(),
            "see the error above; a restore fails before changing anything when the backup cannot be read, and can be run again",
        ))
    }
}
