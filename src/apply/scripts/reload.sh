# Loading managed files into the services that read them; shared by write_file.sh,
# remove_file.sh and supervisor_update.sh. Expects `path` and, for PHP-FPM, `php`.
#
# A file written or removed carries a marker in /run/siteward/unloaded until its service has
# loaded it. An apply stopped in between leaves the marker, and the next observation plans the
# reload. Markers live in /run: after a reboot every service starts on the files as they are.
unloaded_dir=/run/siteward/unloaded
unloaded_marker() { printf '%s/%s' "$unloaded_dir" "$(printf '%s' "$1" | tr / %)"; }
mark_unloaded() { mkdir -p "$unloaded_dir" && : >"$(unloaded_marker "$1")"; }
unmark_unloaded() { rm -f "$(unloaded_marker "$1")"; }
is_unloaded() { [ -e "$(unloaded_marker "$1")" ]; }

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
  [ -e "$path" ] || return 0
  for socket in $(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\(\/[^[:space:]]*\).*/\1/p' "$path"); do
    [ -S "$socket" ] || return 1
  done
}
# A master that runs without `process_control_timeout` (stock php-fpm.conf: 0) kills the requests
# in flight when it reloads; siteward's pools set it, but it takes effect with the reload that
# loads them. So a reload waits (up to 3 s) for a moment when no PHP-FPM socket has a request
# in flight: an adopted site's first reload then cuts nothing.
fpm_busy() { awk 'NR > 1 && $6 == "03" && $8 ~ /^\/(var\/)?run\/php\// { busy = 1 } END { exit !busy }' /proc/net/unix 2>/dev/null; }
wait_fpm_idle() {
  tries=0
  while [ "$tries" -lt 300 ] && fpm_busy; do tries=$((tries + 1)); sleep 0.01; done
}
reload_fpm() { # waits (up to 10 s) until this pool listens
  wait_fpm_idle
  if systemd; then systemctl reload "php$php-fpm"
  else
    pid=$(fpm_pid)
    # The daemon must not inherit reload_once's lock (fd 9): it would hold it for good.
    if [ -n "$pid" ] && kill -USR2 "$pid" 2>/dev/null; then :; else "php-fpm$php" --daemonize 9>&-; fi
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

# reload_once SERVICE RELOAD: runs RELOAD unless a reload of SERVICE started after `changed`
# (the time the file was written or removed): concurrent steps share reloads.
reload_once() {
  marker=/run/siteward-reload-$1
  exec 9>"$marker.lock"
  flock 9
  last=$(cat "$marker" 2>/dev/null || echo 0)
  [ "$last" -gt "$changed" ] && return 0
  date +%s%N >"$marker.next"
  "$2"
  mv -f "$marker.next" "$marker"
}

# load RELOAD: tests the service's configuration, reloads it and drops the marker of `path`.
# A failing test runs `on_failed_test` (put the previous file back) and fails with status 3.
load() {
  case $1 in
    nothing) return 0 ;;
    supervisor) return 0 ;; # the supervisor update step that follows loads it
    nginx)
      if ! out=$(nginx -t 2>&1); then on_failed_test; echo "nginx -t failed$failed_test_note: $out" >&2; exit 3; fi
      reload_once nginx reload_nginx
      ;;
    php-fpm)
      if ! out=$("php-fpm$php" -t 2>&1); then on_failed_test; echo "php-fpm$php -t failed$failed_test_note: $out" >&2; exit 3; fi
      reload_once "php$php-fpm" reload_fpm
      ;;
    *) echo "unknown reload $1" >&2; exit 2 ;;
  esac
  unmark_unloaded "$path"
}
