//! The web side of a site: its PHP-FPM pool and its nginx vhost.

use super::desired::DesiredSite;
use super::file::ManagedFile;
use crate::layout;
use crate::observe::ObservedSite;
use crate::plan::step::Reload;
use crate::plan::{Change, ResourceKind};
use crate::spec::site::SiteType;

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

/// The nginx vhost file.
pub fn vhost_file(desired: &DesiredSite) -> ManagedFile {
    let spec = &desired.site.spec;
    let mut names = vec![desired.domain.to_owned()];
    names.extend(spec.aliases.iter().cloned());
    let root = match &spec.web_directory {
        Some(directory) => format!("{}/{directory}", desired.live),
        None => desired.live.clone(),
    };
    let name = desired.name;
    let php = pool_file(desired).is_some();
    let mut out = format!(
        "{HEADER}\nserver {{\n    listen 80;\n    server_name {names};\n    root {root};\n    index {index};\n    charset utf-8;\n    client_max_body_size 64m;\n    access_log /var/log/nginx/siteward-{name}.access.log;\n    error_log /var/log/nginx/siteward-{name}.error.log;\n\n    location ~ /\\.(?!well-known) {{\n        deny all;\n    }}\n\n",
        names = names.join(" "),
        index = if php {
            "index.php index.html"
        } else {
            "index.html"
        },
    );
    if php {
        out.push_str(&format!(
            "    location / {{\n        try_files $uri $uri/ /index.php?$query_string;\n    }}\n\n    location ~ \\.php$ {{\n        fastcgi_pass unix:{socket};\n        fastcgi_split_path_info ^(.+\\.php)(/.+)$;\n        include fastcgi_params;\n        fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;\n        fastcgi_param DOCUMENT_ROOT $realpath_root;\n        fastcgi_hide_header X-Powered-By;\n    }}\n}}\n",
            socket = layout::fpm_socket(name)
        ));
    } else {
        out.push_str("    location / {\n        try_files $uri $uri/ =404;\n    }\n}\n");
    }
    ManagedFile::system(layout::vhost_path(name), out, Reload::Nginx)
}

/// # Guarantees
/// The pool file is written only when it differs, and FPM reloaded only then, after
/// `php-fpmX.Y -t` passes.
pub fn diff_pool(desired: &DesiredSite, observed: &ObservedSite) -> Option<Change> {
    let file = pool_file(desired)?;
    Some(file.diff(
        ResourceKind::FpmPool,
        &file.path,
        observed.files.get(&file.path),
    ))
}

/// # Guarantees
/// The vhost is written only when it differs; `nginx -t` must pass before the reload, and a
/// failing test puts the previous file back and fails the step.
pub fn diff_vhost(desired: &DesiredSite, observed: &ObservedSite) -> Change {
    let file = vhost_file(desired);
    file.diff(
        ResourceKind::Vhost,
        &file.path,
        observed.files.get(&file.path),
    )
}
