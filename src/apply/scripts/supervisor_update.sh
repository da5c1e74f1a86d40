# Makes supervisor pick up changed program files: only the named programs are added,
# updated or removed, then started. Other programs keep running. Their files' markers
# (reload.sh) go once supervisor has them. Then waits, at most 60 s, until every process of
# the started programs is RUNNING (supervisor says so once a process stayed up `startsecs`):
# a program that goes FATAL, or is not RUNNING in time (BACKOFF: it keeps crashing), fails the
# step, naming its processes' states and the last lines of its log.
# $@ program names
set -eu
# `update` rereads the configuration itself: a `reread` before it would parse every program
# file once more.
supervisor_update /etc/supervisor/conf.d "$@" || exit 1
started=
for program in "$@"; do
  unmark_unloaded "/etc/supervisor/conf.d/$program.conf"
  if [ -e "/etc/supervisor/conf.d/$program.conf" ]; then started="$started $program"; fi
done
[ -n "$started" ] || exit 0
# One supervisorctl for all the programs: each run of it costs supervisord a whole request.
# shellcheck disable=SC2086
supervisorctl start $(for program in $started; do printf '%s:* ' "$program"; done) >/dev/null 2>&1 || true

# Prints "PROGRAM PROCESS STATE" for each process of the started programs (one status call).
states() {
  supervisorctl status 2>/dev/null |
    awk -v wanted="$started" '
      BEGIN { n = split(wanted, list, " "); for (i = 1; i <= n; i++) want[list[i]] = 1 }
      { g = $1; p = $1; i = index(g, ":"); if (i) { g = substr(g, 1, i - 1); p = substr(p, i + 1) } }
      g in want { print g, p, $2 }' || true
}

# Fails naming the processes that are not RUNNING and what their programs logged last: on
# stderr, and on stdout as `failed PROGRAM` followed by `| ` lines, so that a batch of several
# sites' programs fails only the sites whose programs failed.
give_up() {
  echo "$1" >&2
  printf '%s\n' "$2" | awk '$3 != "RUNNING" { print "  " $2 " " $3 }' >&2
  for program in $(printf '%s\n' "$2" | awk '$3 != "RUNNING" { print $1 }' | sort -u); do
    printf 'failed %s\n| %s\n' "$program" "$1"
    printf '%s\n' "$2" | awk -v g="$program" '$1 == g && $3 != "RUNNING" { print "|   " $2 " " $3 }'
    [ -f "/var/log/supervisor/$program.log" ] || continue
    echo "  last lines of /var/log/supervisor/$program.log:" >&2
    echo "|   last lines of /var/log/supervisor/$program.log:"
    tail -n 10 "/var/log/supervisor/$program.log" | cut -c1-300 | sed 's/^/    | /' >&2
    tail -n 10 "/var/log/supervisor/$program.log" | cut -c1-300 | sed 's/^/|     | /'
  done
  exit 1
}

deadline=$(($(date +%s) + 60))
while :; do
  now=$(states)
  if [ -n "$now" ] && ! printf '%s\n' "$now" | awk '$3 != "RUNNING" { bad = 1 } END { exit bad ? 0 : 1 }'; then
    exit 0
  fi
  # Given up on once nothing is starting any more: a FATAL program does not cut short the
  # others of the batch, which may still become RUNNING.
  if [ -n "$now" ] && printf '%s\n' "$now" | awk '$3 != "RUNNING" && $3 != "FATAL" { busy = 1 } END { exit busy ? 1 : 0 }'; then
    give_up "a worker could not start (supervisor gave up on it):" "$now"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    give_up "a worker is not RUNNING after 60 s:" "$now"
  fi
  sleep 0.5
done
