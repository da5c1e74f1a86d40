# Makes supervisor pick up changed program files: only the named programs are added,
# updated or removed, then started. Other programs keep running. Their files' markers
# (reload.sh) go once supervisor has them. Then waits, at most 60 s, until every process of
# the started programs is RUNNING (supervisor says so once a process stayed up `startsecs`):
# a program that goes FATAL, or is not RUNNING in time (BACKOFF: it keeps crashing), fails the
# step, naming its processes' states and the last lines of its log.
# $@ program names
set -eu
supervisorctl reread >/dev/null
supervisorctl update "$@" >/dev/null
started=
for program in "$@"; do
  unmark_unloaded "/etc/supervisor/conf.d/$program.conf"
  if [ -e "/etc/supervisor/conf.d/$program.conf" ]; then
    supervisorctl start "$program:*" >/dev/null 2>&1 || true
    started="$started $program"
  fi
done
[ -n "$started" ] || exit 0

# Prints "PROGRAM PROCESS STATE" for each process of the started programs.
states() {
  for program in $started; do
    supervisorctl status "$program:*" 2>/dev/null |
      awk -v g="$program" '{ n = $1; i = index(n, ":"); if (i) n = substr(n, i + 1); print g, n, $2 }' || true
  done
}

# Fails naming the processes that are not RUNNING and what their programs logged last.
give_up() {
  echo "$1" >&2
  printf '%s\n' "$2" | awk '$3 != "RUNNING" { print "  " $2 " " $3 }' >&2
  for program in $(printf '%s\n' "$2" | awk '$3 != "RUNNING" { print $1 }' | sort -u); do
    [ -f "/var/log/supervisor/$program.log" ] || continue
    echo "  last lines of /var/log/supervisor/$program.log:" >&2
    tail -n 10 "/var/log/supervisor/$program.log" | cut -c1-300 | sed 's/^/    | /' >&2
  done
  exit 1
}

deadline=$(($(date +%s) + 60))
while :; do
  now=$(states)
  if [ -n "$now" ] && ! printf '%s\n' "$now" | awk '$3 != "RUNNING" { bad = 1 } END { exit bad ? 0 : 1 }'; then
    exit 0
  fi
  if printf '%s\n' "$now" | awk '$3 == "FATAL" { fatal = 1 } END { exit fatal ? 0 : 1 }'; then
    give_up "a worker could not start (supervisor gave up on it):" "$now"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    give_up "a worker is not RUNNING after 60 s:" "$now"
  fi
  sleep 0.5
done
