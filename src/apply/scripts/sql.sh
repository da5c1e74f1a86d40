# Runs the SQL on stdin with the server's database administrator.
# $1 engine (mysql|postgres), $2 auth (socket|password), $3 admin user, $4 database to connect to
# With auth=password, the first line of stdin is the password: it goes to a 0600 file that is
# removed afterwards (--defaults-extra-file for MySQL clients, PGPASSFILE for libpq).
set -eu
engine=$1 auth=$2 admin=$3 database=${4:-}
secret_file=
trap '[ -z "$secret_file" ] || rm -f "$secret_file"' EXIT
if [ "$auth" = password ]; then
  IFS= read -r password
  secret_file=$(mktemp /tmp/.siteward-db.XXXXXX)
  chmod 0600 "$secret_file"
fi
client=mariadb
command -v mariadb >/dev/null 2>&1 || client=mysql
case $engine in
  mysql)
    if [ "$auth" = password ]; then
      printf '[client]\nuser="%s"\npassword="%s"\n' "$admin" "$(printf '%s' "$password" | sed 's/\\/\\\\/g; s/"/\\"/g')" >"$secret_file"
      exec "$client" --defaults-extra-file="$secret_file" --batch --skip-column-names ${database:+"$database"}
    fi
    exec "$client" --user="$admin" --batch --skip-column-names ${database:+"$database"}
    ;;
  postgres)
    if [ "$auth" = password ]; then
      printf '*:*:*:%s:%s\n' "$admin" "$(printf '%s' "$password" | sed 's/\\/\\\\/g; s/:/\\:/g')" >"$secret_file"
      PGPASSFILE=$secret_file exec psql -X -A -t -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U "$admin" -d "${database:-postgres}"
    fi
    exec runuser -u "$admin" -- psql -X -A -t -q -v ON_ERROR_STOP=1 -d "${database:-postgres}"
    ;;
esac
