# Writes a batch of files that one service reads (the vhosts or the pools of one PHP version an
# apply wave writes), tests the service's configuration once and reloads it once.
# $1 reload (nginx|php-fpm), $2 PHP version
# Stdin: per file, a line `PATH OWNER GROUP MODE SIZE`, then exactly SIZE bytes of content.
# Prints `ok PATH` per file loaded and `failed PATH` per file that broke the test, followed by
# the test's output as `| ` lines. When the test fails, every file of the batch is put back as
# it was, then each is tried alone: only the files that fail by themselves stay put back (the
# previous file, or no file), the others are loaded. A file of the batch is live only after a
# test that passed with it.
set -eu
reload=$1 php=${2:-}
case $reload in
  nginx) tester="nginx -t" ;;
  php-fpm) tester="php-fpm$php -t" ;;
  *) echo "unknown reload $reload" >&2; exit 2 ;;
esac
test_config() { if [ "$reload" = nginx ]; then nginx -t 2>&1; else "php-fpm$php" -t 2>&1; fi; }
stage=$(mktemp -d /tmp/.siteward-batch.XXXXXX)
trap 'rm -rf "$stage"' EXIT
count=0
while IFS=' ' read -r file_path owner group mode size; do
  count=$((count + 1))
  dir=$(dirname "$file_path")
  mkdir -p "$dir"
  printf '%s\n' "$file_path" >"$stage/$count.path"
  head -c "$size" >"$stage/$count.new"
  chown "$owner:$group" "$stage/$count.new"
  chmod "$mode" "$stage/$count.new"
  if [ -e "$file_path" ]; then cp -p "$file_path" "$stage/$count.old"; fi
done
[ "$count" -gt 0 ] || exit 0

path_of() { cat "$stage/$1.path"; }
# install N: the new file goes live on disk (atomically: a copy in its directory, renamed).
install() {
  target=$(path_of "$1")
  tmp=$(mktemp "$(dirname "$target")/.siteward-new.XXXXXX")
  cp -p "$stage/$1.new" "$tmp"
  sync "$tmp" 2>/dev/null || sync
  mark_unloaded "$target"
  mv -f "$tmp" "$target"
}
# put_back N: the file as it was before the batch (or no file).
put_back() {
  target=$(path_of "$1")
  if [ -e "$stage/$1.old" ]; then
    tmp=$(mktemp "$(dirname "$target")/.siteward-old.XXXXXX")
    cp -p "$stage/$1.old" "$tmp"
    mv -f "$tmp" "$target"
  else
    rm -f "$target"
  fi
}

: >"$stage/loaded"
i=0
while [ "$i" -lt "$count" ]; do i=$((i + 1)); install "$i"; done
if out=$(test_config); then
  i=0
  while [ "$i" -lt "$count" ]; do i=$((i + 1)); echo "$i" >>"$stage/loaded"; done
else
  i=0
  while [ "$i" -lt "$count" ]; do i=$((i + 1)); put_back "$i"; done
  if ! out=$(test_config); then
    echo "$tester failed, previous file restored (it fails without the files of this apply too): $out" >&2
    exit 3
  fi
  i=0
  while [ "$i" -lt "$count" ]; do
    i=$((i + 1))
    install "$i"
    if out=$(test_config); then
      echo "$i" >>"$stage/loaded"
    else
      put_back "$i"
      printf 'failed %s\n' "$(path_of "$i")"
      printf '%s failed, previous file restored: %s\n' "$tester" "$out" | sed 's/^/| /'
    fi
  done
fi
[ -s "$stage/loaded" ] || exit 0

changed=$(date +%s%N)
case $reload in
  nginx) reload_once nginx reload_nginx ;;
  php-fpm)
    # reload_fpm waits until the pool of `path` listens: the last pool loaded stands for all.
    path=$(path_of "$(tail -n 1 "$stage/loaded")")
    reload_once "php$php-fpm" reload_fpm
    ;;
esac
while read -r i; do
  unmark_unloaded "$(path_of "$i")"
  printf 'ok %s\n' "$(path_of "$i")"
done <"$stage/loaded"
