# Takes a site's files over from whoever set it up (the `adopt` section): siteward's own file is
# written, the old files are removed and the old cron lines dropped, all at once; then the
# service is tested and reloaded. A failing test puts every old file back and removes the new
# one: nginx never serves a name from two files and never reloads on a failing `nginx -t`.
# Every old file and every edited crontab is kept under the site's record (`adopted/`).
# $1 site, $2 reload (nothing|nginx|php-fpm|supervisor), $3 PHP version, $4 a group the web
# server joins before it reloads (its new workers then read the site's closed directories); stdin: one record a
# line, tab-separated: `write PATH OWNER GROUP MODE BASE64`, `remove PATH`, `line FILE BASE64`
# (an exact line to drop from FILE), `program NAME` (a program to stop and forget).
set -eu
site=$1 reload=$2 php=${3:-} join=${4:-}
case $reload in nothing | nginx | php-fpm | supervisor) ;; *) echo "unknown reload $reload" >&2; exit 2 ;; esac
tab=$(printf '\t')
work=$(mktemp -d)
keep=/var/lib/siteward/sites/$site/adopted/$(date +%Y%m%dT%H%M%S)
mkdir -p "$keep"
chmod 700 "/var/lib/siteward/sites/$site/adopted"
new_files=
cleanup() {
  for f in $new_files; do rm -f "$f"; done
  rm -rf "$work"
}
trap cleanup EXIT
: >"$work/writes" && : >"$work/removes" && : >"$work/lines" && : >"$work/programs"
while IFS="$tab" read -r kind a b c d e; do
  case $kind in
    write) printf '%s\t%s\t%s\t%s\t%s\n' "$a" "$b" "$c" "$d" "$e" >>"$work/writes" ;;
    remove) printf '%s\n' "$a" >>"$work/removes" ;;
    line) printf '%s\t%s\n' "$a" "$b" >>"$work/lines" ;;
    program) printf '%s\n' "$a" >>"$work/programs" ;;
    '') ;;
    *) echo "unknown record $kind" >&2; exit 2 ;;
  esac
done

# kept PATH: where the old copy of PATH goes.
kept() { printf '%s/%s' "$keep" "$(printf '%s' "$1" | tr / %)"; }

# 1. Everything new is made next to where it goes, nothing is moved yet.
n=0
while IFS="$tab" read -r path owner group mode content; do
  n=$((n + 1))
  dir=$(dirname "$path")
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/.siteward-new.XXXXXX")
  new_files="$new_files $tmp"
  printf '%s' "$content" | base64 -d >"$tmp"
  chown "$owner:$group" "$tmp" && chmod "$mode" "$tmp"
  [ ! -e "$path" ] || cp -p "$path" "$(kept "$path")"
  printf '%s\t%s\n' "$tmp" "$path" >>"$work/moves"
done <"$work/writes"
for file in $(cut -f1 "$work/lines" | sort -u); do
  [ -f "$file" ] || continue
  cp -p "$file" "$(kept "$file")"
  awk -F '\t' -v file="$file" '$1 == file { print $2 }' "$work/lines" | while IFS= read -r encoded; do
    printf '%s' "$encoded" | base64 -d; printf '\n'
  done >"$work/drop"
  tmp=$(mktemp "$(dirname "$file")/.siteward-new.XXXXXX")
  new_files="$new_files $tmp"
  awk 'NR == FNR { drop[$0] = 1; next } !($0 in drop)' "$work/drop" "$file" >"$tmp"
  chown --reference="$file" "$tmp" && chmod --reference="$file" "$tmp"
  printf '%s\t%s\n' "$tmp" "$file" >>"$work/moves"
done
[ -f "$work/moves" ] || : >"$work/moves"
sync

# 2. Cron reads its files at the start of each minute: the switch happens well inside one, so
# cron sees the old entries or the new ones, never both or neither.
touches_cron() { grep -q -e '/etc/cron' -e '/var/spool/cron' "$work/moves" "$work/removes"; }
if touches_cron; then
  while second=$(date +%S) && { [ "$second" -ge 57 ] || [ "$second" -lt 2 ]; }; do sleep 0.5; done
fi

# 3. The switch.
old_programs=
while IFS= read -r path; do
  [ -e "$path" ] || [ -L "$path" ] || continue
  [ "$reload" != supervisor ] || old_programs="$old_programs $(sed -n 's/^\[program:\([^]]*\)\].*/\1/p' "$path" | tr '\n' ' ')"
  cp -P -p "$path" "$(kept "$path")"
  [ "$reload" = nothing ] || mark_unloaded "$path"
  rm -f "$path"
done <"$work/removes"
while IFS="$tab" read -r tmp path; do
  [ "$reload" = nothing ] || mark_unloaded "$path"
  mv -f "$tmp" "$path"
done <"$work/moves"
new_files=
case $(cat "$work/moves" "$work/removes") in *"/var/spool/cron/crontabs/"*) touch /var/spool/cron/crontabs ;; esac
changed=$(date +%s%N)

if [ -n "$join" ] && id -u www-data >/dev/null 2>&1 && ! id -nG www-data | tr ' ' '\n' | grep -qx "$join"; then
  usermod -a -G "$join" www-data
fi

# 4. Test and reload; a failing test puts everything back as it was.
on_failed_test() {
  while IFS="$tab" read -r tmp path; do
    if [ -e "$(kept "$path")" ]; then cp -p "$(kept "$path")" "$path"; else rm -f "$path"; fi
  done <"$work/moves"
  while IFS= read -r path; do
    [ ! -e "$(kept "$path")" ] && [ ! -L "$(kept "$path")" ] || cp -P -p "$(kept "$path")" "$path"
  done <"$work/removes"
}
failed_test_note=", the previous files restored"
path=$(head -n 1 "$work/writes" | cut -f1)
[ -n "$path" ] || path=$(head -n 1 "$work/removes")
if [ "$reload" = supervisor ]; then
  programs=$(cat "$work/programs" | tr '\n' ' ')
  # shellcheck disable=SC2086 # program names are words
  supervisor_update /etc/supervisor/conf.d $old_programs $programs
  while IFS= read -r gone; do unmark_unloaded "$gone"; done <"$work/removes"
else
  load "$reload"
  while IFS= read -r gone; do unmark_unloaded "$gone"; done <"$work/removes"
fi
echo "taken over; the old files are kept in $keep"
