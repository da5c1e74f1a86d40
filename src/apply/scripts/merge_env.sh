# Sets keys in a .env file from stdin (KEY=VALUE lines), keeping every other line as it is,
# and writes the result atomically with mode 0640.
# $1 path, $2 owner, $3 group
set -eu
path=$1 owner=$2 group=$3
dir=$(dirname "$path")
mkdir -p "$dir"
updates=$(mktemp "$dir/.siteward-env.XXXXXX")
new=$(mktemp "$dir/.siteward-new.XXXXXX")
trap 'rm -f "$updates" "$new"' EXIT
cat >"$updates"
source_file=/dev/null
[ -f "$path" ] && source_file=$path
awk '
  NR == FNR { i = index($0, "="); k = substr($0, 1, i - 1); want[k] = $0; order[++n] = k; next }
  {
    key = $0
    sub(/^[ \t]*(export[ \t]+)?/, "", key)
    j = index(key, "=")
    if (j > 0 && key !~ /^#/) {
      key = substr(key, 1, j - 1); gsub(/[ \t]+$/, "", key)
      if (key in want) { if (!(key in done)) { print want[key]; done[key] = 1 }; next }
    }
    print
  }
  END { for (i = 1; i <= n; i++) if (!(order[i] in done)) print want[order[i]] }
' "$updates" "$source_file" >"$new"
chown "$owner:$group" "$new"
chmod 0640 "$new"
sync "$new" 2>/dev/null || sync
mv -f "$new" "$path"
