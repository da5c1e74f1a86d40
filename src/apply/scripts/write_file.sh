# Writes stdin to a file atomically (temp file in the same directory, fsync, owner and mode,
# rename), then tests and reloads the service that reads it (reload.sh). A failing test puts
# the previous file back and fails the step.
# $1 path, $2 owner, $3 group, $4 mode, $5 reload (nothing|nginx|php-fpm|supervisor), $6 PHP version
set -eu
path=$1 owner=$2 group=$3 mode=$4 reload=$5 php=${6:-}
case $reload in nothing | nginx | php-fpm | supervisor) ;; *) echo "unknown reload $reload" >&2; exit 2 ;; esac
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
[ "$reload" = nothing ] || mark_unloaded "$path"
mv -f "$tmp" "$path"
changed=$(date +%s%N)
failed_test_note=", previous file restored"
on_failed_test() {
  if [ -n "$backup" ]; then mv -f "$backup" "$path"; backup=; else rm -f "$path"; fi
}
load "$reload"
