# Dumps a database to stdout, compressed. After db_login.sh: $1 compression, $2 database.
# MySQL/MariaDB: DEFINER clauses are removed outside the data (INSERT) lines, so that views,
# triggers, routines and events load on a server without the source's users.
compression=$1 database=$2
case $engine in
  mysql)
    dump=mariadb-dump
    command -v mariadb-dump >/dev/null 2>&1 || dump=mysqldump
    { as_admin "$dump" --single-transaction --quick --routines --triggers --events --hex-blob \
        --default-character-set=utf8mb4 "$database" || echo $? >"$status_file"; } \
      | sed '/^INSERT INTO /!s/DEFINER=`[^`]*`@`[^`]*`//g' | compress "$compression"
    ;;
  postgres)
    { as_admin pg_dump -Fc -Z0 -d "$database" || echo $? >"$status_file"; } \
      | compress "$compression"
    ;;
esac
check_status "the dump of $database"
