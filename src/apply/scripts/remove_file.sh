# Removes a managed file, then tests and reloads the service that read it (reload.sh). A file
# already gone is reloaded only when its marker says the service never saw it go.
# $1 path, $2 reload (nothing|nginx|php-fpm|supervisor), $3 PHP version
set -eu
path=$1 reload=$2 php=${3:-}
case $reload in nothing | nginx | php-fpm | supervisor) ;; *) echo "unknown reload $reload" >&2; exit 2 ;; esac
if [ -e "$path" ] || [ -L "$path" ]; then
  [ "$reload" = nothing ] || mark_unloaded "$path"
  rm -f "$path"
elif ! is_unloaded "$path"; then
  exit 0
fi
changed=$(date +%s%N)
failed_test_note=" after $path was removed (it stays removed; fix the configuration and apply again)"
on_failed_test() { :; }
load "$reload"
