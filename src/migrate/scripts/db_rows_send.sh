# Sends rows as data: runs the SELECTs on stdin (after the password line, if any) in one
# session and prints their rows, escaped as `mysql --batch` does and compressed. After
# db_login.sh (MySQL/MariaDB): $1 compression, $2 database.
compression=$1 database=$2
client=mariadb
command -v mariadb >/dev/null 2>&1 || client=mysql
{ as_admin "$client" --batch --skip-column-names --quick --default-character-set=binary \
    --max-allowed-packet=1G -- "$database" || echo $? >"$status_file"; } | compress "$compression"
check_status "selecting the rows of $database"
