# Deploys a revision. With `releases`: a new directory under releases/, shared paths linked
# in, the deploy script run as the site user, then `current` switched atomically (a new link
# renamed over the old one) and old releases pruned. With `in-place`: fetch and check out in
# the site root. A failing step leaves the live release untouched. After a switch the health
# check runs against the server itself; a failure switches back, restarts the workers on the
# previous release and marks the new one bad (`.siteward-bad` holds the deploy's fingerprint).
# Strategy `rollback` switches `current` to release $5 (and reloads, restarts as a deploy does).
# $1 strategy (releases|in-place|rollback), $2 user, $3 root, $4 repository, $5 revision (the
# release id for rollback), $6 keep releases, $7 PHP binary, $8 domain, $9 branch,
# $10 storage:link (yes|no), $11 shared paths (comma separated), $12 restart commands (newline
# separated, run as the site user after the switch), $13 supervisor programs restarted after the
# switch (newline separated), $14 health path (empty: no check), $15 expected status,
# $16 expected body text, $17 health timeout in seconds, $18 the deploy's fingerprint,
# $19 the health check's scheme (http, or https for sites with TLS; default http)
# stdin: the deploy script (may be empty)
set -eu
strategy=$1 user=$2 root=$3 repository=$4 revision=$5 keep=$6 php=$7 domain=$8 branch=$9
storage_link=${10} shared=${11} restart=${12} programs=${13} health_path=${14}
health_status=${15} health_body=${16} health_timeout=${17} fingerprint=${18} scheme=${19:-http}
home=$(getent passwd "$user" | cut -d: -f6)
# One deploy of a site at a time. A run killed during a deploy leaves that deploy running on
# the server (its script, the migrations): the next run's deploy waits for it instead of
# running the same migrations beside it. The lock goes with the process, so a deploy that died
# holds nothing; children run without it (a daemon a deploy script starts must not keep it).
mkdir -p /run/siteward
exec 8>"/run/siteward/deploy-$(printf '%s' "$root" | tr / %).lock"
if ! flock -w 540 8; then
  echo "deploy failed: another deploy of $root has been running on this server for 9 minutes" >&2
  exit 5
fi
script_file=$(mktemp /tmp/.siteward-deploy.XXXXXX)
trap 'rm -f "$script_file"' EXIT
cat >"$script_file"
chmod 0644 "$script_file"
bin=$root/.siteward-bin
as_user() { runuser -u "$user" -- env -i HOME="$home" USER="$user" LANG=C.UTF-8 PATH="$bin:/usr/local/bin:/usr/bin:/bin" "$@" 8>&-; }

prepare_bin() {
  mkdir -p "$bin"
  [ -z "$php" ] || ln -sfn "$php" "$bin/php"
  chown -h "$user:$user" "$bin" "$bin/php" 2>/dev/null || true
}

run_script() { # $1 directory
  [ -s "$script_file" ] || return 0
  (cd "$1" && as_user SITE_PATH="$root" RELEASE_PATH="$1" DOMAIN="$domain" BRANCH="$branch" \
    REVISION="$revision" PHP_BINARY="$php" sh -e "$script_file") 2>&1
}

laravel_links() { # $1 directory
  [ "$storage_link" = yes ] && [ -f "$1/artisan" ] || return 0
  (cd "$1" && as_user php artisan storage:link --relative >/dev/null 2>&1) || true
}

restart_workers() { # $1 directory: Laravel's restart commands, then this site's programs only
  printf '%s\n' "$restart" | while IFS= read -r command; do
    [ -n "$command" ] && (cd "$1" && as_user sh -c "$command" >/dev/null 2>&1) || true
  done
  printf '%s\n' "$programs" | while IFS= read -r program; do
    [ -n "$program" ] && supervisorctl restart "$program:*" >/dev/null 2>&1 || true
  done
}

reload_fpm() { # waits (up to 10 s) until the master is back
  [ -n "$php" ] || return 0
  version=${php#/usr/bin/php}
  pidfile=/run/php/php$version-fpm.pid
  if [ -d /run/systemd/system ]; then systemctl reload "php$version-fpm" || true; return 0; fi
  [ -s "$pidfile" ] && kill -USR2 "$(cat "$pidfile")" 2>/dev/null || return 0
  tries=0
  while [ "$tries" -lt 100 ]; do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && return 0
    tries=$((tries + 1)); sleep 0.1
  done
}

# The health check against the server itself with the site's Host header, retried until the
# timeout (a reload may be finishing); prints why it failed.
healthy() {
  [ -n "$health_path" ] || return 0
  deadline=$(($(date +%s) + health_timeout))
  body_file=$(mktemp /tmp/.siteward-health.XXXXXX)
  while :; do
    left=$((deadline - $(date +%s)))
    [ "$left" -ge 1 ] || left=1
    if [ "$scheme" = https ]; then
      set -- --insecure --resolve "$domain:443:127.0.0.1" "https://$domain$health_path"
    else
      set -- --header "Host: $domain" "http://127.0.0.1$health_path"
    fi
    code=$(curl --noproxy '*' --silent --max-time "$left" --output "$body_file" --write-out '%{http_code}' \
      "$@" 2>/dev/null) || code=${code:-000}
    why=
    [ "$code" = "$health_status" ] || why="GET $health_path answered $code, expected $health_status"
    if [ -z "$why" ] && [ -n "$health_body" ] && ! grep -qF -- "$health_body" "$body_file"; then
      why="GET $health_path answered without the text \"$health_body\""
    fi
    [ -n "$why" ] || { rm -f "$body_file"; return 0; }
    [ "$(date +%s)" -lt "$deadline" ] || break
    sleep 0.5
  done
  rm -f "$body_file"
  [ "$code" != 000 ] || why="GET $health_path got no answer within ${health_timeout}s"
  echo "$why"
  return 1
}

switch_to() { # $1 release id
  ln -sfn "releases/$1" "$root/.current-new"
  mv -T "$root/.current-new" "$root/current"
}

activate() { # $1 release id: switch, reload FPM, restart the workers
  switch_to "$1"
  reload_fpm
  restart_workers "$root/releases/$1"
}

# After a failed health check: back to the previous release, the new one marked bad.
revert() { # $1 failed id, $2 previous id (may be empty), $3 why
  printf '%s\n' "$fingerprint" >"$root/releases/$1/.siteward-bad"
  if [ -z "$2" ] || [ ! -d "$root/releases/$2" ]; then
    echo "deploy failed: health check: $3; release $1 is marked bad, but there is no previous release to switch back to" >&2
    exit 4
  fi
  activate "$2"
  echo "deploy failed: health check: $3; switched back to release $2 and marked release $1 bad" >&2
  exit 4
}

rollback_to() { # $1 release id
  [ -d "$root/releases/$1" ] || { echo "rollback failed: release $1 does not exist" >&2; exit 3; }
  prepare_bin
  activate "$1"
  echo "rolled back to release $1"
}

deploy_in_place() {
  prepare_bin
  if [ ! -d "$root/.git" ]; then
    as_user git -C "$root" init --quiet
    as_user git -C "$root" remote add origin "$repository"
  fi
  as_user git -C "$root" fetch --quiet origin
  as_user git -C "$root" checkout --quiet --force --detach "$revision"
  subject=$(as_user git -C "$root" log -1 --format=%s 2>/dev/null || true)
  run_script "$root"
  laravel_links "$root"
  reload_fpm
  restart_workers "$root"
  why=$(healthy) || { echo "deploy failed: health check: $why (in-place deploys cannot switch back)" >&2; exit 4; }
  echo "deployed $revision ($subject) in place"
}

# Releases a killed deploy left half built: no `.siteward-revision` (written last before the
# switch) and not live. They are never rollback targets; the next deploy removes them.
remove_unfinished() {
  live=$(readlink "$root/current" 2>/dev/null || true)
  live=${live#releases/}
  for dir in "$root"/releases/*; do
    [ -d "$dir" ] && [ ! -L "$dir" ] || continue
    [ -e "$dir/.siteward-revision" ] || [ "${dir##*/}" = "$live" ] || rm -rf "$dir"
  done
}

deploy_release() {
  prepare_bin
  remove_unfinished
  id=$(date -u +%Y%m%d%H%M%S)
  release=$root/releases/$id
  [ ! -e "$release" ] || { sleep 1; id=$(date -u +%Y%m%d%H%M%S); release=$root/releases/$id; }
  fail() { rm -rf "$release"; echo "deploy failed: $1; the live release is untouched" >&2; exit 3; }
  as_user git clone --quiet --no-checkout "$repository" "$release" || fail "git clone"
  as_user git -C "$release" checkout --quiet --detach "$revision" || fail "checkout of $revision"
  subject=$(as_user git -C "$release" log -1 --format=%s 2>/dev/null || true)
  echo "checked out $revision: $subject" >&2
  rm -rf "$release/.git"
  old_ifs=$IFS; IFS=,
  for path in $shared; do
    [ -n "$path" ] || continue
    rm -rf "${release:?}/$path"
    mkdir -p "$(dirname "$release/$path")"
    ln -s "$root/shared/$path" "$release/$path"
    chown -h "$user:$user" "$release/$path"
  done
  IFS=$old_ifs
  if [ -f "$release/artisan" ]; then
    mkdir -p "$release/bootstrap/cache"
    chown "$user:$user" "$release/bootstrap/cache"
  fi
  run_script "$release" || fail "the deploy script exited non-zero"
  laravel_links "$release"
  # Built: the commit recorded marks the release finished (see remove_unfinished).
  printf '%s\n' "$revision" >"$release/.siteward-revision"
  chown "$user:$user" "$release/.siteward-revision"
  previous=$(readlink "$root/current" 2>/dev/null || true)
  previous=${previous#releases/}
  activate "$id"
  why=$(healthy) || revert "$id" "$previous" "$why"
  prune "$id"
  echo "deployed $revision ($subject) as release $id"
}

prune() { # keep the newest $keep releases, never the live one or the one before it
  live=$1
  ls -1 "$root/releases" | sort -r | awk -v keep="$keep" -v live="$live" '
    $0 == live { seen_live = 1; kept++; next }
    seen_live && !previous { previous = 1; kept++; next }
    { if (kept < keep) { kept++; next } print }
  ' | while IFS= read -r old; do rm -rf "${root:?}/releases/$old"; done
}

case $strategy in
  releases) deploy_release ;;
  in-place) deploy_in_place ;;
  rollback) rollback_to "$revision" ;;
  *) echo "unknown strategy $strategy" >&2; exit 2 ;;
esac
