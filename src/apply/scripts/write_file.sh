# Writes stdin to a file atomically (temp file in the same directory, fsync, owner and mode,
# rename), then tests and reloads the service that reads it. A failing test puts the previous
# file back and fails the step. Concurrent steps share reloads: a reload that started after
# this file was written already serves it.
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
written=$(date +%s%N)
restore() {
  if [ -n "$backup" ]; then mv -f "$backup" "$path"; backup=; else rm -f "$path"; fi
}
systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

nginx_workers() { ps -eo pid=,args= | awk '$2 == "nginx:" && $3 == "worker" && $4 == "process" && NF == 4 { print $1 }' | sort; }
reload_nginx() { # waits (up to 5 s) until workers with the new configuration serve
  old=$(nginx_workers)
  if systemd; then systemctl reload nginx; else nginx -s reload; fi
  tries=0
  while [ "$tries" -lt 50 ]; do
    new=$(nginx_workers)
    if [ -n "$new" ] && [ -z "$(printf '%s\n%s\n' "$old" "$new" | sort | uniq -d)" ]; then return 0; fi
    tries=$((tries + 1)); sleep 0.1
  done
}

fpm_pid() { cat "/run/php/php$php-fpm.pid" 2>/dev/null || true; }
fpm_ready() { # this file's pool listens (pools written meanwhile wait for their own reload)
  for socket in $(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\(\/[^[:space:]]*\).*/\1/p' "$path"); do
    [ -S "$socket" ] || return 1
  done
}
reload_fpm() { # waits (up to 10 s) until this pool listens
  if systemd; then systemctl reload "php$php-fpm"
  else
    pid=$(fpm_pid)
    if [ -n "$pid" ] && kill -USR2 "$pid" 2>/dev/null; then :; else "php-fpm$php" --daemonize; fi
  fi
  tries=0
  while [ "$tries" -lt 100 ]; do
    pid=$(fpm_pid)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && fpm_ready; then return 0; fi
    tries=$((tries + 1)); sleep 0.1
  done
  echo "php-fpm$php did not come back listening on the pool of $path within 10 s" >&2
  return 3
}

# Runs RELOAD unless a reload of SERVICE started after this file was written.
reload_once() { # SERVICE RELOAD
  marker=/run/siteward-reload-$1
  exec 9>"$marker.lock"
  flock 9
  last=$(cat "$marker" 2>/dev/null || echo 0)
  [ "$last" -gt "$written" ] && return 0
  date +%s%N >"$marker.next"
  "$2"
  mv -f "$marker.next" "$marker"
}

case $reload in
  nothing) ;;
  nginx)
    if ! out=$(nginx -t 2>&1); then restore; echo "nginx -t failed, previous file restored: $out" >&2; exit 3; fi
    reload_once nginx reload_nginx
    ;;
  php-fpm)
    if ! out=$("php-fpm$php" -t 2>&1); then restore; echo "php-fpm$php -t failed, previous file restored: $out" >&2; exit 3; fi
    reload_once "php$php-fpm" reload_fpm
    ;;
  *) echo "unknown reload $reload" >&2; exit 2 ;;
esac
