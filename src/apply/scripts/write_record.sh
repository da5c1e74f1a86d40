# Writes a site's record (key=value lines on stdin) atomically.
# $1 site
set -eu
dir=/var/lib/siteward/sites/$1
mkdir -p "$dir"
chmod 0700 /var/lib/siteward "$dir" 2>/dev/null || true
tmp=$(mktemp "$dir/.facts.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp"
chmod 0600 "$tmp"
sync "$tmp" 2>/dev/null || sync
mv -f "$tmp" "$dir/facts"
