# Releases a site's lock when this run holds it.
# $1 site, $2 token
set -eu
dir=/var/lib/siteward/sites/$1
lock=$dir/lock
[ -f "$lock" ] || exit 0
exec 9>>"$dir/guard"
flock -x -w 120 9
if [ "$(sed -n 's/^token=//p' "$lock")" = "$2" ]; then
  rm -f "$lock"
  printf '%s released %s\n' "$(date +%s.%N)" "$2" >>"$dir/locks.log"
fi
exit 0
