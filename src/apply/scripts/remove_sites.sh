# Removes everything of some sites from this server (`apply --prune`): their workers, managed
# files, processes, site roots, users with their groups, and records. Databases are dropped by
# separate SQL. What is the whole server's is done once for all of them: the workers are
# stopped side by side (each gracefully, within its stopwaitsecs), then one supervisor update,
# one nginx test and reload, one reload of each PHP-FPM master.
# Stdin: a line `site NAME` per site, followed by its `user NAME`, `root PATH`, `file PATH` and
# `program NAME` lines (a value is the rest of its line).
# Prints `ok SITE` per site removed, and `failed SITE` with the reason as `| ` lines per site
# that was not (the reason on stderr too); exits 1 when one was not (the others are removed
# all the same).
set -u
list=$(mktemp /tmp/.siteward-remove.XXXXXX)
err=$(mktemp /tmp/.siteward-remove.XXXXXX)
trap 'rm -f "$list" "$err"' EXIT
cat >"$list"
# values KIND: every value of that kind, one a line.
values() { sed -n "s/^$1 //p" "$list"; }

programs=$(values program)
# shellcheck disable=SC2086 # program names are words without blanks
supervisor_stop_groups $programs
values file | while IFS= read -r file; do rm -f -- "$file"; done
# shellcheck disable=SC2086
supervisor_update /etc/supervisor/conf.d $programs 2>/dev/null || true
if nginx -t >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then systemctl reload nginx; else nginx -s reload; fi
fi
for pid in /run/php/php*-fpm.pid; do [ -s "$pid" ] && kill -USR2 "$(cat "$pid")" 2>/dev/null || true; done

# The users' processes end (their cron jobs, what the reloaded pools leave), at once, before
# their files go: TERM, a few seconds, then KILL.
users=$(values user | while IFS= read -r user; do id -u -- "$user" >/dev/null 2>&1 && printf '%s\n' "$user"; done)
for user in $users; do pkill -u "$user" 2>/dev/null || true; done
running() { for user in $users; do pgrep -u "$user" >/dev/null 2>&1 && return 0; done; return 1; }
tries=0
while running && [ "$tries" -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
for user in $users; do pkill -KILL -u "$user" 2>/dev/null || true; done

# remove_site SITE USER ROOT: the site's root, user, group and record.
remove_site() {
  case $3 in /home/*/*) rm -rf -- "$3" || return 1 ;; esac
  if [ -n "$2" ] && id -u -- "$2" >/dev/null 2>&1; then
    crontab -r -u "$2" 2>/dev/null || true
    # The web server is a member of the user's group: userdel keeps a group with members.
    gpasswd -d www-data "$2" >/dev/null 2>&1 || true
    userdel --remove "$2" 2>/dev/null || userdel --force --remove "$2" || return 1
  fi
  if [ -n "$2" ] && group=$(getent group "$2") && [ -z "${group##*:}" ]; then
    groupdel "$2" || return 1
  fi
  rm -rf -- "/var/lib/siteward/sites/$1"
}

status=0 site=
finish() { # the site read last
  [ -n "$site" ] || return 0
  if remove_site "$site" "$user" "$root" 2>"$err"; then
    printf 'ok %s\n' "$site"
  else
    printf 'failed %s\n' "$site"
    sed 's/^/| /' "$err"
    cat "$err" >&2
    status=1
  fi
}
while IFS=' ' read -r kind value; do
  case $kind in
    site) finish; site=$value user= root= ;;
    user) user=$value ;;
    root) root=$value ;;
  esac
done <"$list"
finish
exit "$status"
