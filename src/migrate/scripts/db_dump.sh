# Dumps a database to stdout, compressed. After db_login.sh: $1 compression, $2 database, $3 the
# part (MySQL/MariaDB: `schema`, `rows` of the tables named after $4, or `triggers`;
# PostgreSQL: `all`), $4 the largest INSERT statement of the rows, in bytes (below what the
# target accepts; fewer, larger statements load faster).
# MySQL/MariaDB: DEFINER clauses are removed from the schema and the triggers, so that views,
# triggers, routines and events load on a server without the source's users; the rows are sent
# as they are (no filter can mistake a value for a clause), in the binary character set: every
# value as the bytes stored, escaped inside a string literal (no hex, no conversion). Measured on
# MariaDB 10.11, 1 GB of blobs and text rows: half the bytes of `--hex-blob` in utf8mb4, and the
# target's client and server spend 26 CPU-s where they spent 45 (the client scans hex digits for
# a delimiter one by one; the server checks utf8mb4 in every string).
compression=$1 database=$2 part=$3 statement_bytes=$4
shift 4
case $engine:$part in
  mysql:*)
    dump=mariadb-dump
    command -v mariadb-dump >/dev/null 2>&1 || dump=mysqldump
    case $part in
      schema) set -- --no-data --skip-triggers --routines --events -- "$database" ;;
      rows) set -- --default-character-set=binary --quick --no-create-info --skip-triggers \
          --net-buffer-length="$statement_bytes" -- "$database" "$@" ;;
      triggers) set -- --no-data --no-create-info --triggers -- "$database" ;;
      *) echo "siteward: unknown part $part of a dump" >&2; exit 2 ;;
    esac
    set -- "$dump" --single-transaction --default-character-set=utf8mb4 "$@"
    # (the rows' --default-character-set=binary, later on the line, is the one that counts)
    if [ "$part" = rows ]; then
      { as_admin "$@" || echo $? >"$status_file"; } | compress "$compression"
    else
      { as_admin "$@" || echo $? >"$status_file"; } \
        | sed 's/DEFINER=`[^`]*`@`[^`]*`//g' | compress "$compression"
    fi
    ;;
  postgres:all)
    { as_admin pg_dump -Fc -Z0 -d "$database" || echo $? >"$status_file"; } \
      | compress "$compression"
    ;;
  *) echo "siteward: unknown part $part of a $engine dump" >&2; exit 2 ;;
esac
check_status "the dump of $database"
