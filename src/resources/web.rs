//! The web side of a site: its PHP-FPM pool and its nginx vhost.

use super::desired::DesiredSite;
use super::file::{ManagedFile, removal};
use crate::layout;
use crate::observe::ObservedSite;
use crate::plan::step::Reload;
use crate::plan::{Change, ResourceKind};
use crate::spec::site::SiteType;
use crate::spec::tls::TlsSource;

const HEADER: &str = "# Managed by siteward: edits here are overwritten by the next apply.";

/// The PHP-FPM pool file of a PHP site.
pub fn pool_file(desired: &DesiredSite) -> Option<ManagedFile> {
    let php = desired.php?;
    if desired.site.spec.site_type == SiteType::Static {
        return None;
    }
    let name = desired.name;
    let user = desired.user;
    let content = format!(
        "; Managed by siteward: edits here are overwritten by the next apply.\n\
         ; Deploys reload PHP-FPM: requests running then get up to 10 s to finish instead of a 502.\n\
         [global]\nprocess_control_timeout = 10s\n\n[siteward-{name}]\nuser = {user}\ngroup = {user}\nlisten = {socket}\nlisten.owner = www-data\nlisten.group = www-data\nlisten.mode = 0660\npm = ondemand\npm.max_children = 10\npm.process_idle_timeout = 30s\npm.max_requests = 1000\nchdir = /\ncatch_workers_output = yes\nphp_admin_value[error_log] = /var/log/php{php}-fpm-siteward-{name}.log\n",
        socket = layout::fpm_socket(name),
    );
    Some(ManagedFile::system(
        layout::pool_path(php, name),
        content,
        Reload::PhpFpm {
            version: php.to_owned(),
        },
    ))
}

/// The vhost `text` passing PHP to `old` instead of `socket`, and retrying once, after a pause
/// in the socket's backlog, a request a PHP-FPM reload cut: the vhost of an adopted site while
/// its first reload of PHP-FPM runs (`adopt::bridge_pool_reload`).
pub fn bridged_vhost(text: &str, socket: &str, old: &str) -> String {
    let pass = format!("fastcgi_pass unix:{socket};");
    let bridged = format!("fastcgi_pass unix:{old};\n        error_page 502 = @siteward_retry;");
    let retry = format!(
        "    location @siteward_retry {{\n        fastcgi_pass unix:{old};\n        fastcgi_split_path_info ^(.+\\.php)(/.+)$;\n        include fastcgi_params;\n        fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;\n        fastcgi_param DOCUMENT_ROOT $realpath_root;\n        fastcgi_hide_header X-Powered-By;\n    }}\n"
    );
    let replaced = text.replace(&pass, &bridged);
    match replaced.rfind("\n}") {
        Some(end) => format!("{}\n\n{retry}}}{}", &replaced[..end], &replaced[end + 2..]),
        None => replaced,
    }
}

/// Which vhost to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VhostForm {
    /// What the spec asks for: port 80, and with `tls` port 443 (and the redirect).
    Wanted,
    /// Port 80 only, answering ACME challenges: while a site's first certificate is issued.
    Interim,
}

/// The nginx vhost file.
pub fn vhost_file(desired: &DesiredSite) -> ManagedFile {
    let content = render_vhost(desired, VhostForm::Wanted);
    ManagedFile::system(layout::vhost_path(desired.name), content, Reload::Nginx)
}

/// The vhost's text in `form`.
pub fn render_vhost(desired: &DesiredSite, form: VhostForm) -> String {
    let spec = &desired.site.spec;
    let mut names = vec![desired.domain.to_owned()];
    names.extend(spec.aliases.iter().cloned());
    let names = names.join(" ");
    let body = vhost_body(desired);
    let acme = desired
        .tls
        .is_some_and(|tls| matches!(tls.source(), Some(TlsSource::Acme(_))));
    let challenge = if acme {
        super::tls::challenge_location()
    } else {
        String::new()
    };
    let head = |listen: &str| format!("server {{\n{listen}    server_name {names};\n");
    let Some(tls) = desired.tls.filter(|_| form == VhostForm::Wanted) else {
        return format!(
            "{HEADER}\n{}{challenge}{body}}}\n",
            head("    listen 80;\n")
        );
    };
    let lines = super::tls::server_lines(desired.name, tls);
    if tls.redirect {
        format!(
            "{HEADER}\n{}{challenge}    location / {{\n        return 301 https://$host$request_uri;\n    }}\n}}\n\n{}{lines}{body}}}\n",
            head("    listen 80;\n"),
            head("    listen 443 ssl http2;\n"),
        )
    } else {
        let both = "    listen 80;\n    listen 443 ssl http2;\n";
        format!("{HEADER}\n{}{challenge}{lines}{body}}}\n", head(both))
    }
}

/// Everything of a server block after its `listen` and `server_name` lines, but its `}`.
fn vhost_body(desired: &DesiredSite) -> String {
    let spec = &desired.site.spec;
    let root = match &spec.web_directory {
        Some(directory) => format!("{}/{directory}", desired.live),
        None => desired.live.clone(),
    };
    let name = desired.name;
    let php = pool_file(desired).is_some();
    let mut out = format!(
        "    root {root};\n    index {index};\n    charset utf-8;\n    client_max_body_size 64m;\n    access_log /var/log/nginx/siteward-{name}.access.log;\n    error_log /var/log/nginx/siteward-{name}.error.log;\n\n    location ~ /\\.(?!well-known) {{\n        deny all;\n    }}\n\n",
        index = if php {
            "index.php index.html"
        } else {
            "index.html"
        },
    );
    if php {
        out.push_str(&format!(
            "    location / {{\n        try_files $uri $uri/ /index.php?$query_string;\n    }}\n\n    location ~ \\.php$ {{\n        fastcgi_pass unix:{socket};\n        fastcgi_split_path_info ^(.+\\.php)(/.+)$;\n        include fastcgi_params;\n        fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;\n        fastcgi_param DOCUMENT_ROOT $realpath_root;\n        fastcgi_hide_header X-Powered-By;\n    }}\n",
            socket = layout::fpm_socket(name)
        ));
    } else {
        out.push_str("    location / {\n        try_files $uri $uri/ =404;\n    }\n");
    }
    out
}

/// # Guarantees
/// The pool file is written only when it differs, and FPM reloaded only then, after
/// `php-fpmX.Y -t` passes. The site's pools under other PHP versions (the spec's version
/// changed, or the site became static) are removed and their FPM reloaded, so that one FPM
/// alone listens on the site's socket.
pub fn diff_pool(desired: &DesiredSite, observed: &ObservedSite) -> Vec<Change> {
    let wanted = pool_file(desired);
    let mut changes = Vec::new();
    if let Some(file) = &wanted {
        changes.push(file.diff(ResourceKind::FpmPool, &file.path, observed));
    }
    for path in observed.managed_paths() {
        let Some(version) = layout::pool_version(path, desired.name) else {
            continue;
        };
        if wanted.as_ref().is_some_and(|file| file.path == path) {
            continue;
        }
        let reload = Reload::PhpFpm {
            version: version.to_owned(),
        };
        changes.extend(removal(ResourceKind::FpmPool, path, path, observed, reload));
    }
    changes
}

/// # Guarantees
/// The vhost is written only when it differs; `nginx -t` must pass before the reload, and a
/// failing test puts the previous file back and fails the step.
pub fn diff_vhost(desired: &DesiredSite, observed: &ObservedSite) -> Change {
    let file = vhost_file(desired);
    file.diff(ResourceKind::Vhost, &file.path, observed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridged_vhost_passes_php_to_the_old_socket_and_retries_once() {
        let text = "server {\n    location ~ \\.php$ {\n        fastcgi_pass unix:/run/php/siteward-a.sock;\n    }\n}\n";
        let bridged = bridged_vhost(text, "/run/php/siteward-a.sock", "/run/php/php8.2-fpm.sock");
        assert!(!bridged.contains("siteward-a.sock"), "{bridged}");
        assert_eq!(
            bridged
                .matches("fastcgi_pass unix:/run/php/php8.2-fpm.sock;")
                .count(),
            2,
            "{bridged}"
        );
        assert!(
            bridged.contains("error_page 502 = @siteward_retry;"),
            "{bridged}"
        );
        assert!(bridged.ends_with("    }\n}\n"), "{bridged}");
        assert_eq!(
            bridged.matches('{').count(),
            bridged.matches('}').count(),
            "{bridged}"
        );
    }
    use crate::observe::ObservedFile;
    use crate::plan::{Action, Step};
    use crate::spec::site::Site;

    fn php_site(php: &str) -> Site {
        let text = format!(
            "apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {{name: a}}\nspec: {{address: 192.0.2.1}}\n---\n\
             apiVersion: siteward.dev/v1\nkind: Site\nmetadata: {{name: blog}}\n\
             spec: {{server: a, type: php, domain: blog.test, user: blog, php: \"{php}\"}}\n"
        );
        crate::spec::first_site_of(&text)
    }

    fn holding(file: &ManagedFile) -> ObservedSite {
        let mut observed = ObservedSite::default();
        observed.files.insert(
            file.path.clone(),
            ObservedFile {
                sha256: super::super::file::sha256_hex(file.content.as_bytes()),
                owner: file.owner.clone(),
                group: file.group.clone(),
                mode: file.mode,
                content: Some(file.content.clone()),
            },
        );
        observed
    }

    #[test]
    fn a_new_php_version_writes_its_pool_and_removes_the_old_one() {
        let old_site = php_site("8.2");
        let old_pool = pool_file(&DesiredSite::new(&old_site)).unwrap();
        let new_site = php_site("8.3");
        let new = DesiredSite::new(&new_site);
        let changes = diff_pool(&new, &holding(&old_pool));
        let actions: Vec<(Action, &str)> = changes
            .iter()
            .map(|c| (c.action, c.name.as_str()))
            .collect();
        assert_eq!(
            actions,
            vec![
                (Action::Create, "/etc/php/8.3/fpm/pool.d/siteward-blog.conf"),
                (Action::Delete, "/etc/php/8.2/fpm/pool.d/siteward-blog.conf"),
            ]
        );
        assert_eq!(
            changes[1].steps,
            vec![Step::RemoveFile {
                path: old_pool.path.clone(),
                reload: Reload::PhpFpm {
                    version: "8.2".into()
                },
            }]
        );
    }

    #[test]
    fn a_pool_removed_but_not_reloaded_is_removed_again() {
        let site = php_site("8.3");
        let desired = DesiredSite::new(&site);
        let pool = pool_file(&desired).unwrap();
        let mut observed = holding(&pool);
        observed
            .unloaded
            .insert("/etc/php/8.2/fpm/pool.d/siteward-blog.conf".into());
        let changes = diff_pool(&desired, &observed);
        assert_eq!(changes[0].action, Action::NoOp);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[1].action, Action::Delete);
        assert!(
            changes[1]
                .reason
                .contains("php-fpm8.2 has not reloaded since"),
            "{}",
            changes[1].reason
        );
    }

    #[test]
    fn another_sites_pool_is_left_alone() {
        let site = php_site("8.3");
        let desired = DesiredSite::new(&site);
        let mut observed = holding(&pool_file(&desired).unwrap());
        observed
            .unloaded
            .insert("/etc/php/8.2/fpm/pool.d/siteward-blog-eu.conf".into());
        let changes = diff_pool(&desired, &observed);
        assert_eq!(changes.len(), 1, "{changes:?}");
    }
}
