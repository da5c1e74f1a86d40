# Loads a compressed dump from stdin (after the password line, if any) into an existing, empty
# database. After db_login.sh: $1 compression, $2 database, $3 role owning the restored objects
# (PostgreSQL; empty: the administrator), $4 the character set the client reads the statements
# in (MySQL/MariaDB: the dump's, `binary` for rows; empty: utf8mb4).
compression=$1 database=$2 role=${3:-} charset=${4:-utf8mb4}
case $engine in
  mysql)
    client=mariadb
    command -v mariadb >/dev/null 2>&1 || client=mysql
    { decompress "$compression" || echo $? >"$status_file"; } \
      | as_admin "$client" --default-character-set="$charset" --batch "$database"
    ;;
  postgres)
    { decompress "$compression" || echo $? >"$status_file"; } \
      | as_admin pg_restore --exit-on-error --single-transaction --no-owner ${role:+--role="$role"} \
          -d "$database"
    ;;
esac
check_status "decompressing the dump of $database"
