# Writes a batch of files that one service reads (the vhosts or the pools of one PHP version an
# apply wave writes), tests the service's configuration once and reloads it once. Files no
# service tests (cron files; supervisor programs, which the supervisor update step loads) are
# only written, in one round trip.
# $1 reload (nginx|php-fpm|files), $2 PHP version
# Stdin: per file, a line `PATH OWNER GROUP MODE SIZE MARKER` (MARKER: the name of its marker in
# /run/siteward/unloaded, `-` for none), then exactly SIZE bytes of content. Paths hold no blanks.
# Prints `ok PATH` per file loaded and `failed PATH` per file that broke the test, followed by
# the test's output as `| ` lines. When the test fails, every file of the batch is put back as
# it was, then each is tried alone: only the files that fail by themselves stay put back (the
# previous file, or no file), the others are loaded. A file is live only after a test that
# passed with it. Per file, the work is two processes (`head`, `mv`); the rest is done in bulk:
# hundreds of sites make hundreds of files.
set -eu
reload=$1 php=${2:-}
case $reload in
  nginx) tester="nginx -t" ;;
  php-fpm) tester="php-fpm$php -t" ;;
  files) tester= ;;
  *) echo "unknown reload $reload" >&2; exit 2 ;;
esac
test_config() { if [ "$reload" = nginx ]; then nginx -t 2>&1; else "php-fpm$php" -t 2>&1; fi; }
mkdir -p "$unloaded_dir"
dirs= attributes=
cleanup() {
  for dir in $dirs; do rm -f "$dir/.siteward-new.$$."* "$dir/.siteward-old.$$."*; done
  rm -f "$attributes"
}
trap cleanup EXIT
count=0
: "${TMPDIR:=/tmp}"
attributes=$(mktemp "$TMPDIR/.siteward-batch.XXXXXX")
dirs=${attributes%/*}
while IFS=' ' read -r file_path owner group mode size marker; do
  count=$((count + 1))
  dir=${file_path%/*}
  case " $dirs " in *" $dir "*) ;; *) mkdir -p "$dir"; dirs="$dirs $dir" ;; esac
  new=$dir/.siteward-new.$$.$count old=
  head -c "$size" >"$new"
  if [ -e "$file_path" ]; then old=$dir/.siteward-old.$$.$count; cp -p "$file_path" "$old"; fi
  eval "path_$count=\$file_path new_$count=\$new old_$count=\$old marker_$count=\$marker"
  printf '%s:%s %s %s\n' "$owner" "$group" "$mode" "$new" >>"$attributes"
done
[ "$count" -gt 0 ] || exit 0
# Owner, mode and fsync of the new files in bulk, before any goes live.
for owner in $(cut -d' ' -f1 "$attributes" | sort -u); do
  # shellcheck disable=SC2046
  chown "$owner" $(awk -v o="$owner" '$1 == o { print $3 }' "$attributes")
done
for mode in $(cut -d' ' -f2 "$attributes" | sort -u); do
  # shellcheck disable=SC2046
  chmod "$mode" $(awk -v m="$mode" '$2 == m { print $3 }' "$attributes")
done
# shellcheck disable=SC2046
sync $(cut -d' ' -f3 "$attributes") 2>/dev/null || sync

get() { eval "printf '%s' \"\$$1_$2\""; }
install() { # N: the new file goes live on disk (renamed over the old one), marked unloaded
  [ "$(get marker "$1")" = - ] || : >"$unloaded_dir/$(get marker "$1")"
  mv -f "$(get new "$1")" "$(get path "$1")"
}
take_back() { # N: the new file leaves (kept aside), the one before it comes back (or none)
  mv -f "$(get path "$1")" "$(get new "$1")"
  old=$(get old "$1")
  if [ -n "$old" ]; then
    cp -p "$old" "$old.tmp" && mv -f "$old.tmp" "$(get path "$1")"
  else
    rm -f "$unloaded_dir/$(get marker "$1")" # no file, none loaded: nothing to reload
  fi
}

loaded=
i=0
while [ "$i" -lt "$count" ]; do i=$((i + 1)); install "$i"; done
if [ -z "$tester" ]; then
  i=0
  while [ "$i" -lt "$count" ]; do i=$((i + 1)); printf 'ok %s\n' "$(get path "$i")"; done
  exit 0
fi
if out=$(test_config); then
  i=0
  while [ "$i" -lt "$count" ]; do i=$((i + 1)); loaded="$loaded $i"; done
else
  i=0
  while [ "$i" -lt "$count" ]; do i=$((i + 1)); take_back "$i"; done
  if ! out=$(test_config); then
    echo "$tester failed, previous file restored (it fails without the files of this apply too): $out" >&2
    exit 3
  fi
  i=0
  while [ "$i" -lt "$count" ]; do
    i=$((i + 1))
    install "$i"
    if out=$(test_config); then
      loaded="$loaded $i"
    else
      take_back "$i"
      printf 'failed %s\n' "$(get path "$i")"
      printf '%s failed, previous file restored: %s\n' "$tester" "$out" | sed 's/^/| /'
    fi
  done
fi
[ -n "$loaded" ] || exit 0

changed=$(date +%s%N)
case $reload in
  nginx) reload_once nginx reload_nginx ;;
  php-fpm)
    # reload_fpm waits until the pool of `path` listens: one FPM master loads every pool at once.
    for i in $loaded; do path=$(get path "$i"); done
    reload_once "php$php-fpm" reload_fpm
    ;;
esac
markers=
for i in $loaded; do
  markers="$markers $unloaded_dir/$(get marker "$i")"
  printf 'ok %s\n' "$(get path "$i")"
done
# shellcheck disable=SC2086
rm -f $markers
