# The start of every handover_*.sh script about jobs: a site's cron file and supervisor
# programs, live or paused, and what of them runs.
# $1 site, $2 live cron file, $3 prefix of the live program files (`…/conf.d/siteward-SITE-`),
# $4 paused directory, $5 cron users (space separated); the script's own arguments follow.
set -eu
site=$1 cron_file=$2 program_prefix=$3 paused=$4 given_users=$5
shift 5
program_dir=${program_prefix%/*}
cron_name=${cron_file##*/}

# One handover script of a site at a time. A run killed while its script waits (supervisor
# stopping the workers gracefully, cron jobs draining) leaves that script running on the
# server; the next run's script waits for it instead of undoing half of its work.
mkdir -p /run/siteward
exec 8>"/run/siteward/handover-$site.lock"
if ! flock -w 600 8; then
  echo "another handover of site $site has been running on this server for 10 minutes" >&2
  exit 5
fi

# cron_users: the given users and every user a line of the cron file (live or paused) runs as.
cron_users() {
  # shellcheck disable=SC2086 # a list of user names, split on purpose
  printf '%s\n' $given_users
  for file in "$cron_file" "$paused/$cron_name"; do
    [ -f "$file" ] || continue
    awk '/^[ \t]*(#|$)/ { next } $1 ~ /=/ { next }
      $1 ~ /^@/ { print $2; next } NF >= 7 { print $6 }' "$file"
  done
}

# owned FILE: whether a program file matching the prefix is this site's (a site `shop-eu`'s
# files also match `siteward-shop-*`; siteward's header names the site).
owned() {
  owner=$(sed -n '1s/^; Managed by siteward for site `\([^`]*\)`.*/\1/p' "$1")
  [ -z "$owner" ] || [ "$owner" = "$site" ]
}

# live_programs: this site's live program files, one path a line.
live_programs() {
  for file in "$program_prefix"*.conf; do
    [ -f "$file" ] && owned "$file" && printf '%s\n' "$file"
  done
  return 0
}

# paused_programs: the paused program files, one path a line.
paused_programs() {
  for file in "$paused"/*.conf; do
    [ -f "$file" ] && printf '%s\n' "$file"
  done
  return 0
}

# program_of FILE: the supervisor program a file defines (its name without `.conf`).
program_of() { basename -- "$1" .conf; }

# move FROM TO: replaces TO by FROM atomically even across file systems (/etc and /var/lib
# may be two): a copy under a dotted name (cron and supervisor both ignore it) is renamed
# over TO, then FROM is removed. A cut-off move leaves both, and the next run moves again.
move() {
  staged="${2%/*}/.siteward-moving-${2##*/}"
  cp -p -- "$1" "$staged"
  mv -f -- "$staged" "$2"
  rm -f -- "$1"
}

# supervisor_apply PROGRAMS...: makes supervisor pick up added and removed files of exactly
# these programs; removed ones are stopped gracefully (stopwaitsecs) before this returns.
supervisor_apply() { supervisor_update "$program_dir" "$@"; }

# cron_processes: "PID COMMAND" of each running process of the cron users that descends from
# the cron daemon (cron's own per-job children excepted): the site's cron jobs still running.
cron_processes() {
  uids=
  for user in $(cron_users | sort -u); do
    uid=$(id -u -- "$user" 2>/dev/null) && uids="$uids $uid"
  done
  [ -n "$uids" ] || return 0
  ps -e -o pid=,ppid=,uid=,comm= | awk -v uids="$uids " '
    { parent[$1] = $2; uid[$1] = $3; comm[$1] = $4 }
    END {
      for (pid in uid) {
        if (index(uids, " " uid[pid] " ") == 0 || comm[pid] == "cron") continue
        up = parent[pid]
        for (depth = 0; up > 1 && depth < 64; depth++) {
          if (comm[up] == "cron" || comm[up] == "crond") { print pid; break }
          up = parent[up]
        }
      }
    }' | while IFS= read -r pid; do
    command=$(ps -o args= -p "$pid" 2>/dev/null) || continue
    printf '%s %s\n' "$pid" "$command"
  done
}

# program_states: "PROGRAM STATE" per process supervisor knows of the programs named on stdin.
program_states() {
  status=$(supervisorctl status 2>/dev/null || true)
  while IFS= read -r program; do
    [ -n "$program" ] || continue
    printf '%s\n' "$status" | awk -v program="$program" '
      { group = $1; sub(/:.*/, "", group) }
      group == program && NF >= 2 { print program, $2 }'
  done
}

# print_state: the answer every handover script ends with, one fact a line.
print_state() {
  if [ -f "$cron_file" ]; then echo "cron-live"; fi
  if [ -f "$paused/$cron_name" ]; then echo "cron-paused"; fi
  live=$(live_programs) held=$(paused_programs)
  for kind in live paused; do
    if [ "$kind" = live ]; then files=$live; else files=$held; fi
    printf '%s\n' "$files" | while IFS= read -r file; do
      if [ -n "$file" ]; then echo "$kind $(program_of "$file")"; fi
    done
  done
  printf '%s\n%s\n' "$live" "$held" | while IFS= read -r file; do
    if [ -n "$file" ]; then program_of "$file"; fi
  done | sort -u | program_states | sed 's/^/state /'
  cron_processes | sed 's/^/cron-process /'
  echo "end"
}
