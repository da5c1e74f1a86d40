# Takes a site's lock: created, or taken over when the holder's lease expired, when the holder
# is a run of this machine that was killed, or when this run brings a newer fence than the
# holder's (a daemon whose lease in the shared store the holder lost).
# $1 site, $2 token, $3 owner, $4 machine, $5 pid, $6 lease seconds, $7 a token to take over
# (the lock of a run on this machine whose process is gone), $8 the fence ("" when none)
# Prints `acquired`; `held` and the holder's record (exit 4); `fenced` and the newest fence
# seen when this run's fence is older (exit 5).
set -eu
site=$1 token=$2 owner=$3 machine=$4 pid=$5 lease=$6 stale=${7:-} fence=${8:-}
dir=/var/lib/siteward/sites/$site
mkdir -p "$dir"
lock=$dir/lock
# Steps of a fenced run hold the guard shared while they run: a takeover waits for them, and
# stops them after a while when this run brings a newer fence (their run lost its lease).
exec 9>>"$dir/guard"
if ! flock -x -w 10 9; then
  held_fence=$(sed -n 's/^fence=//p' "$lock" 2>/dev/null || true)
  if [ -n "$fence" ] && [ -n "$held_fence" ] && [ "$fence" -gt "$held_fence" ]; then
    for running in "$dir"/running/*; do
      [ -f "$running" ] || continue
      read -r run_token run_started <"$running" || continue
      [ "$run_token" = "$token" ] && continue
      group=${running##*/}
      group=${group%%.*}
      started=$(cut -d' ' -f22 "/proc/$group/stat" 2>/dev/null || echo gone)
      if [ "$started" = "$run_started" ]; then kill -KILL "-$group" 2>/dev/null || true; fi
      rm -f "$running"
    done
  fi
  flock -x -w 120 9
fi
now=$(date +%s)
newest=$(cat "$dir/fence" 2>/dev/null || echo 0)
if [ -n "$fence" ] && [ "$fence" -lt "${newest:-0}" ]; then
  echo fenced
  echo "fence=$newest"
  exit 5
fi
record() {
  printf 'token=%s\nowner=%s\nmachine=%s\npid=%s\nacquired=%s\nexpires=%s\n' "$token" "$owner" "$machine" "$pid" "$now" "$((now + lease))"
  [ -z "$fence" ] || printf 'fence=%s\n' "$fence"
}
take() {
  # The logs of steps and locks keep their last 1 MiB or so (one older file each).
  for log in steps.log locks.log; do
    if [ -f "$dir/$log" ] && [ "$(wc -c <"$dir/$log")" -ge 1048576 ]; then mv -f "$dir/$log" "$dir/$log.1"; fi
  done
  tmp=$(mktemp "$dir/.lock.XXXXXX")
  record >"$tmp"
  mv -f "$tmp" "$lock"
  if [ -n "$fence" ] && [ "$fence" -gt "${newest:-0}" ]; then
    printf '%s\n' "$fence" >"$dir/.fence.tmp" && mv -f "$dir/.fence.tmp" "$dir/fence"
  fi
  printf '%s acquired %s %s fence=%s\n' "$(date +%s.%N)" "$owner" "$token" "${fence:--}" >>"$dir/locks.log"
  echo acquired
  exit 0
}
[ -f "$lock" ] || take
held_by=$(sed -n 's/^token=//p' "$lock" 2>/dev/null || true)
[ "$held_by" = "$token" ] && take
expires=$(sed -n 's/^expires=//p' "$lock" 2>/dev/null || echo 0)
held_fence=$(sed -n 's/^fence=//p' "$lock" 2>/dev/null || true)
[ "${expires:-0}" -lt "$now" ] && take
[ -n "$stale" ] && [ "$held_by" = "$stale" ] && take
[ -n "$fence" ] && [ -n "$held_fence" ] && [ "$fence" -gt "$held_fence" ] && take
echo held
cat "$lock"
exit 4
