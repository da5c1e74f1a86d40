# Removes everything of a site from this server: workers, managed files, the site root and
# user, and the record. Databases are dropped by separate SQL. Used by `apply --prune`.
# $1 site, $2 user, $3 root, $4 managed files (newline separated), $5 programs (newline separated)
set -eu
site=$1 user=$2 root=$3 files=$4 programs=$5
printf '%s\n' "$programs" | while IFS= read -r program; do
  if [ -n "$program" ]; then supervisorctl stop "$program:*" >/dev/null 2>&1 || true; fi
done
printf '%s\n' "$files" | while IFS= read -r file; do
  if [ -n "$file" ]; then rm -f "$file"; fi
done
# shellcheck disable=SC2086 # program names are words without blanks
supervisor_update /etc/supervisor/conf.d $programs 2>/dev/null || true
if nginx -t >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then systemctl reload nginx; else nginx -s reload; fi
fi
for pid in /run/php/php*-fpm.pid; do [ -s "$pid" ] && kill -USR2 "$(cat "$pid")" 2>/dev/null || true; done
case $root in /home/*/*) rm -rf "$root" ;; esac
if [ -n "$user" ] && id -u "$user" >/dev/null 2>&1; then
  pkill -u "$user" 2>/dev/null || true
  crontab -r -u "$user" 2>/dev/null || true
  sleep 0.2
  userdel --remove "$user" 2>/dev/null || userdel --force --remove "$user"
fi
rm -rf "/var/lib/siteward/sites/$site"
