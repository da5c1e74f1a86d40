# Writes stdin to a file atomically (temp file in the same directory, fsync, owner and mode,
# rename), then tests and reloads the service that reads it. A failing test puts the previous
# file back and fails the step.
# $1 path, $2 owner, $3 group, $4 mode, $5 reload (nothing|nginx|php-fpm), $6 PHP version
set -eu
path=$1 owner=$2 group=$3 mode=$4 reload=$5 php=${6:-}
dir=$(dirname "$path")
mkdir -p "$dir"
tmp=$(mktemp "$dir/.siteward-new.XXXXXX")
backup=
cleanup() { rm -f "$tmp"; [ -z "$backup" ] || rm -f "$backup"; }
trap cleanup EXIT
cat >"$tmp"
chown "$owner:$group" "$tmp"
chmod "$mode" "$tmp"
sync "$tmp" 2>/dev/null || sync
if [ -e "$path" ]; then
  backup=$(mktemp "$dir/.siteward-old.XXXXXX")
  cp -p "$path" "$backup"
fi
mv -f "$tmp" "$path"
restore() {
  if [ -n "$backup" ]; then mv -f "$backup" "$path"; backup=; else rm -f "$path"; fi
}
systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }
nginx_workers() { ps -eo pid=,args= | awk '$2 == "nginx:" && $3 == "worker" && $4 == "process" && NF == 4 { print $1 }' | sort; }
# Reloads nginx and waits (up to 5 s) until workers with the new configuration serve.
reload_nginx() {
  old=$(nginx_workers)
  if systemd; then systemctl reload nginx; else nginx -s reload; fi
  tries=0
  while [ "$tries" -lt 50 ]; do
    new=$(nginx_workers)
    if [ -n "$new" ] && [ -z "$(printf '%s\n%s\n' "$old" "$new" | sort | uniq -d)" ]; then return 0; fi
    tries=$((tries + 1))
    sleep 0.1
  done
}
case $reload in
  nothing) ;;
  nginx)
    if ! out=$(nginx -t 2>&1); then restore; echo "nginx -t failed, previous file restored: $out" >&2; exit 3; fi
    reload_nginx
    ;;
  php-fpm)
    if ! out=$("php-fpm$php" -t 2>&1); then restore; echo "php-fpm$php -t failed, previous file restored: $out" >&2; exit 3; fi
    if systemd; then systemctl reload "php$php-fpm"
    elif [ -s "/run/php/php$php-fpm.pid" ]; then kill -USR2 "$(cat "/run/php/php$php-fpm.pid")"
    else "php-fpm$php" --daemonize; fi
    ;;
  *) echo "unknown reload $reload" >&2; exit 2 ;;
esac
