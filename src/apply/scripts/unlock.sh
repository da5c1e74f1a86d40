# Releases a site's lock when this run holds it.
# $1 site, $2 token
set -eu
lock=/var/lib/siteward/sites/$1/lock
[ -f "$lock" ] || exit 0
[ "$(sed -n 's/^token=//p' "$lock")" = "$2" ] && rm -f "$lock"
exit 0
