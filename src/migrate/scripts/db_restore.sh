# Loads a compressed dump from stdin (after the password line, if any) into an existing, empty
# database. After db_login.sh: $1 compression, $2 database, $3 role owning the restored objects
# (PostgreSQL; empty: the administrator), $4 the character set the client reads the statements
# in (MySQL/MariaDB: the dump's, `binary` for rows; empty: utf8mb4), $5 how many connections
# build PostgreSQL's indexes, constraints and triggers (post-data; empty: 1).
compression=$1 database=$2 role=${3:-} charset=${4:-utf8mb4} jobs=${5:-1}
case $engine in
  mysql)
    client=mariadb
    command -v mariadb >/dev/null 2>&1 || client=mysql
    { decompress "$compression" || echo $? >"$status_file"; } \
      | as_admin "$client" --default-character-set="$charset" --batch "$database"
    ;;
  postgres)
    restore() {
      as_admin pg_restore --exit-on-error --no-owner ${role:+--role="$role"} -d "$database" "$@"
    }
    if [ "$jobs" -le 1 ]; then
      { decompress "$compression" || echo $? >"$status_file"; } | restore --single-transaction
    else
      # pg_restore builds side by side only from a file: the archive is spooled to B's disk
      # (0700, the administrator's), the schema and the rows load in one transaction, then the
      # post-data section with $jobs connections. A failure leaves a database the next
      # attempt drops and makes again.
      spool=$(mktemp -d /var/tmp/.siteward-restore.XXXXXX)
      trap 'rm -f $temporary; rm -rf "$spool"' EXIT
      decompress "$compression" >"$spool/archive"
      [ "$auth" = password ] || chown -R "$admin" "$spool"
      restore --single-transaction --section=pre-data --section=data "$spool/archive"
      restore --jobs="$jobs" --section=post-data "$spool/archive"
    fi
    ;;
esac
check_status "decompressing the dump of $database"
