# Takes a site's lock: created atomically, or taken over when the holder's lease expired.
# $1 site, $2 token, $3 owner, $4 machine, $5 pid, $6 lease seconds, $7 a token to take over
# (the lock of a run on this machine whose process is gone)
# Prints `acquired`, or `held` and the holder's record (exit 4).
set -eu
site=$1 token=$2 owner=$3 machine=$4 pid=$5 lease=$6 stale=${7:-}
dir=/var/lib/siteward/sites/$site
mkdir -p "$dir"
lock=$dir/lock
now=$(date +%s)
record() { printf 'token=%s\nowner=%s\nmachine=%s\npid=%s\nacquired=%s\nexpires=%s\n' "$token" "$owner" "$machine" "$pid" "$now" "$((now + lease))"; }
if (set -C; record >"$lock") 2>/dev/null; then echo acquired; exit 0; fi
held_by=$(sed -n 's/^token=//p' "$lock" 2>/dev/null || true)
if [ "$held_by" = "$token" ]; then record >"$lock"; echo acquired; exit 0; fi
expires=$(sed -n 's/^expires=//p' "$lock" 2>/dev/null || echo 0)
takeover=no
[ "${expires:-0}" -lt "$now" ] && takeover=yes
[ -n "$stale" ] && [ "$held_by" = "$stale" ] && takeover=yes
if [ "$takeover" = yes ] && mkdir "$lock.takeover" 2>/dev/null; then
  trap 'rmdir "$lock.takeover"' EXIT
  tmp=$(mktemp "$dir/.lock.XXXXXX")
  record >"$tmp"
  mv -f "$tmp" "$lock"
  echo acquired
  exit 0
fi
echo held
cat "$lock"
exit 4
