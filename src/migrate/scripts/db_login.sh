# Logs in to a database engine as its administrator; the start of every db_*.sh script.
# $1 engine (mysql|postgres), $2 auth (socket|password), $3 admin user; the script's own
# arguments follow. With auth=password the first line of stdin is the password: it goes to a
# 0600 file removed on exit (--defaults-extra-file for MySQL clients, PGPASSFILE for libpq).
set -eu
engine=$1 auth=$2 admin=$3
shift 3
temporary=
trap 'rm -f $temporary' EXIT
# scratch: prints the path of a new 0600 file, removed on exit.
scratch() { mktemp /tmp/.siteward-db.XXXXXX; }
if [ "$auth" = password ]; then
  IFS= read -r password
  secret_file=$(scratch)
  temporary="$temporary $secret_file"
  case $engine in
    mysql) printf '[client]\nuser="%s"\npassword="%s"\n' "$admin" \
      "$(printf '%s' "$password" | sed 's/\\/\\\\/g; s/"/\\"/g')" >"$secret_file" ;;
    postgres) printf '*:*:*:%s:%s\n' "$admin" \
      "$(printf '%s' "$password" | sed 's/\\/\\\\/g; s/:/\\:/g')" >"$secret_file"
      export PGPASSFILE="$secret_file" PGHOST=127.0.0.1 PGUSER="$admin" ;;
  esac
fi
cd /
# as_admin PROGRAM ARGS...: runs a client program logged in as the administrator.
as_admin() {
  case $engine:$auth in
    mysql:password) program=$1; shift; "$program" --defaults-extra-file="$secret_file" "$@" ;;
    mysql:socket) program=$1; shift; "$program" --user="$admin" "$@" ;;
    postgres:password) "$@" ;;
    postgres:socket) runuser -u "$admin" -- "$@" ;;
  esac
}
# compress METHOD / decompress METHOD: the wire format, zstd or gzip.
compress() { if [ "$1" = zstd ]; then zstd -q -1 -c -T0; else gzip -1 -c; fi; }
decompress() { if [ "$1" = zstd ]; then zstd -q -d -c; else gzip -d -c; fi; }
# A pipeline's status is its last command's (no pipefail in dash): the first stage of each
# pipeline records a failure in this file, checked afterwards.
status_file=$(scratch)
temporary="$temporary $status_file"
check_status() {
  if [ -s "$status_file" ]; then
    echo "siteward: $1 failed with status $(cat "$status_file")" >&2
    exit 1
  fi
}
