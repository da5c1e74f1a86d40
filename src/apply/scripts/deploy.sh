# Deploys a revision. With `releases`: a new directory under releases/, shared paths linked
# in, the deploy script run as the site user, then `current` switched atomically (a new link
# renamed over the old one) and old releases pruned. With `in-place`: fetch and check out in
# the site root. A failing step leaves the live release untouched.
# $1 strategy, $2 user, $3 root, $4 repository, $5 revision, $6 keep releases, $7 PHP binary,
# $8 domain, $9 branch, $10 storage:link (yes|no), $11 shared paths (comma separated),
# $12 restart commands (newline separated, run as the site user after the switch)
# stdin: the deploy script (may be empty)
set -eu
strategy=$1 user=$2 root=$3 repository=$4 revision=$5 keep=$6 php=$7 domain=$8 branch=$9
storage_link=${10} shared=${11} restart=${12}
home=$(getent passwd "$user" | cut -d: -f6)
script_file=$(mktemp /tmp/.siteward-deploy.XXXXXX)
trap 'rm -f "$script_file"' EXIT
cat >"$script_file"
chmod 0644 "$script_file"
bin=$root/.siteward-bin
as_user() { runuser -u "$user" -- env -i HOME="$home" USER="$user" LANG=C.UTF-8 PATH="$bin:/usr/local/bin:/usr/bin:/bin" "$@"; }

prepare_bin() {
  mkdir -p "$bin"
  [ -z "$php" ] || ln -sfn "$php" "$bin/php"
  chown -h "$user:$user" "$bin" "$bin/php" 2>/dev/null || true
}

run_script() { # $1 directory
  [ -s "$script_file" ] || return 0
  (cd "$1" && as_user SITE_PATH="$root" RELEASE_PATH="$1" DOMAIN="$domain" BRANCH="$branch" \
    REVISION="$revision" PHP_BINARY="$php" sh -e "$script_file") >&2
}

laravel_links() { # $1 directory
  [ "$storage_link" = yes ] && [ -f "$1/artisan" ] || return 0
  (cd "$1" && as_user php artisan storage:link --relative >/dev/null 2>&1) || true
}

restart_workers() { # $1 directory
  [ -n "$restart" ] || return 0
  printf '%s\n' "$restart" | while IFS= read -r command; do
    [ -n "$command" ] && (cd "$1" && as_user sh -c "$command" >/dev/null 2>&1) || true
  done
}

reload_fpm() {
  [ -n "$php" ] || return 0
  version=${php#/usr/bin/php}
  if [ -d /run/systemd/system ]; then systemctl reload "php$version-fpm" || true
  elif [ -s "/run/php/php$version-fpm.pid" ]; then kill -USR2 "$(cat "/run/php/php$version-fpm.pid")" || true; fi
}

deploy_in_place() {
  prepare_bin
  if [ ! -d "$root/.git" ]; then
    as_user git -C "$root" init --quiet
    as_user git -C "$root" remote add origin "$repository"
  fi
  as_user git -C "$root" fetch --quiet origin
  as_user git -C "$root" checkout --quiet --force --detach "$revision"
  run_script "$root"
  laravel_links "$root"
  reload_fpm
  restart_workers "$root"
  echo "deployed $revision in place"
}

deploy_release() {
  prepare_bin
  id=$(date -u +%Y%m%d%H%M%S)
  release=$root/releases/$id
  [ ! -e "$release" ] || { sleep 1; id=$(date -u +%Y%m%d%H%M%S); release=$root/releases/$id; }
  fail() { rm -rf "$release"; echo "deploy failed: $1; the live release is untouched" >&2; exit 3; }
  as_user git clone --quiet --no-checkout "$repository" "$release" || fail "git clone"
  as_user git -C "$release" checkout --quiet --detach "$revision" || fail "checkout of $revision"
  rm -rf "$release/.git"
  printf '%s\n' "$revision" >"$release/.siteward-revision"
  chown "$user:$user" "$release/.siteward-revision"
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
  ln -sfn "releases/$id" "$root/.current-new"
  mv -T "$root/.current-new" "$root/current"
  reload_fpm
  restart_workers "$release"
  prune "$id"
  echo "deployed $revision as release $id"
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
  *) echo "unknown strategy $strategy" >&2; exit 2 ;;
esac
