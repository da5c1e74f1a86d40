#!/bin/sh
# siteward's backups of one site with restic: installed as /etc/siteward/backup/<site>/siteward-backup
# and run by cron (its settings and secrets beside it, root-only), or sent by siteward itself
# (`sh -c SCRIPT siteward --stdin ACTION ...`, settings and secrets on stdin up to a `--end--`
# line, data after it). Secrets never reach a process argument: they go to 0600 files in a
# private temporary directory, removed on exit (RESTIC_PASSWORD_FILE, an AWS credentials file,
# the SSH key of an SFTP store, a MySQL option file or a PGPASSFILE).
#
# Actions: backup | scheduled-backup | check [--read-data] | scheduled-check | snapshots |
# fetch DBID DBPATH FILESID SHARED | receive-database | receive-files | receive-env |
# apply-stage | discard-stage | dump-database | dump-files | dump-env
set -eu
umask 077
LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL PATH
from=installed
if [ "${1:-}" = --stdin ]; then
  from=stdin
  shift
fi
action=${1:-}
[ $# -eq 0 ] || shift
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
work=$(mktemp -d "$base/.siteward-backup.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
cd /

die() {
  echo "siteward-backup: $*" >&2
  exit 1
}

# --- settings and secrets ----------------------------------------------------------------------

cfg_site= cfg_server= cfg_repository= cfg_engine= cfg_database= cfg_charset= cfg_collation=
cfg_admin_user= cfg_admin_auth=socket cfg_db_owner= cfg_shared= cfg_paths= cfg_owner=
cfg_keep_daily=0 cfg_keep_weekly=0 cfg_keep_monthly=0 cfg_stale_after=0
cfg_sftp_login= cfg_sftp_port=22 cfg_sftp_known_host=
setting() {
  case $1 in
  site | server | repository | engine | database | charset | collation | admin_user | admin_auth | \
    db_owner | shared | paths | owner | keep_daily | keep_weekly | keep_monthly | stale_after | \
    sftp_login | sftp_port | sftp_known_host)
    eval "cfg_$1=\$2"
    ;;
  password | aws_access_key_id | aws_secret_access_key | ssh_key | admin_password)
    printf '%s' "$2" | base64 -d >"$work/$1" || die "the secret $1 is not base64"
    ;;
  esac
}
read_settings() {
  while IFS= read -r line || [ -n "$line" ]; do
    [ "$line" = --end-- ] && return 0
    case $line in '' | '#'*) continue ;; *=*) setting "${line%%=*}" "${line#*=}" ;; esac
  done
}
if [ "$from" = stdin ]; then
  read_settings
else
  dir=$(dirname "$0")
  read_settings <"$dir/config"
  read_settings <"$dir/secrets"
fi
case $cfg_site in '' | -* | *[!a-z0-9-]*) die "no valid site in the settings" ;; esac
status_dir=/var/lib/siteward/sites/$cfg_site
stage=${cfg_shared%/*}/.siteward-restore.$cfg_site

restic_env() {
  [ -n "$cfg_repository" ] || die "no repository in the settings"
  [ -s "$work/password" ] || die "no repository password in the settings"
  RESTIC_REPOSITORY=$cfg_repository
  RESTIC_PASSWORD_FILE=$work/password
  RESTIC_CACHE_DIR=/var/cache/siteward-restic
  export RESTIC_REPOSITORY RESTIC_PASSWORD_FILE RESTIC_CACHE_DIR
  # siteward shows restic's progress (bytes, rate, ETA): twice a second, not once a minute.
  if [ "$from" = stdin ]; then
    RESTIC_PROGRESS_FPS=2
    export RESTIC_PROGRESS_FPS
  fi
  if [ -s "$work/aws_access_key_id" ]; then
    {
      echo '[default]'
      printf 'aws_access_key_id = %s\n' "$(cat "$work/aws_access_key_id")"
      printf 'aws_secret_access_key = %s\n' "$(cat "$work/aws_secret_access_key")"
    } >"$work/aws"
    AWS_SHARED_CREDENTIALS_FILE=$work/aws
    export AWS_SHARED_CREDENTIALS_FILE
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_PROFILE 2>/dev/null || true
  fi
  case $cfg_repository in sftp:*) sftp_env ;; esac
}

# An SFTP store: restic runs this ssh, with the site's key and the store's pinned host key only
# (no agent, no configuration of root's, no host key learnt on first use).
sftp_command=
sftp_env() {
  [ -s "$work/ssh_key" ] || die "no SSH key for the SFTP repository in the settings"
  [ -n "$cfg_sftp_known_host" ] || die "no host key for the SFTP repository in the settings"
  case $cfg_sftp_login$cfg_sftp_port in *[!a-zA-Z0-9@.:_-]*) die "the SFTP login $cfg_sftp_login:$cfg_sftp_port is not valid" ;; esac
  # ssh reads no key whose last line lacks its newline (a secret from the environment may).
  if [ -n "$(tail -c 1 "$work/ssh_key")" ]; then echo >>"$work/ssh_key"; fi
  printf '%s\n' "$cfg_sftp_known_host" >"$work/known_hosts"
  sftp_command="ssh -F /dev/null -i $work/ssh_key -o IdentitiesOnly=yes -o IdentityAgent=none"
  sftp_command="$sftp_command -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$work/known_hosts"
  sftp_command="$sftp_command -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=15 -o ServerAliveInterval=15"
  # ssh's own words go to a file of the run's: restic passes ssh's stderr on only while it
  # runs, and often ends before a refused login's message arrives.
  sftp_command="$sftp_command -o ServerAliveCountMax=3 -E $work/ssh.log -p $cfg_sftp_port $cfg_sftp_login -s sftp"
}

# restic, with the ssh of an SFTP store when the repository is one.
restic() {
  if [ -n "$sftp_command" ]; then
    command restic -o "sftp.command=$sftp_command" "$@"
  else
    command restic "$@"
  fi
}

# The store holds nothing at the repository's place (restic's words for S3 and for SFTP).
nothing_there() {
  grep -Eq 'specified (key|bucket) does not exist|no such file or directory|file does not exist' "$1"
}

# ssh_said FILE: what ssh said, from its log (see sftp_env) and what restic passed on.
ssh_said() {
  sed -n 's/^subprocess ssh: //p' "$1"
  if [ -f "$work/ssh.log" ]; then cat "$work/ssh.log"; fi
}

# reason FILE: restic's own words for a failure: its `Fatal:` line, else its last line; for an
# SFTP store, then on a line of its own what ssh said (restic itself only sees the session end).
reason() {
  sw_said=$(grep -m1 '^Fatal: ' "$1" | sed 's/^Fatal: //' | grep . || tail -n 1 "$1")
  # The first line that names a cause, else the last one.
  sw_ssh=$(ssh_said "$1" | grep -E -m1 'Host key verification failed|IDENTIFICATION HAS CHANGED|Permission denied|Connection (refused|timed out|closed)|No route to host|Could not resolve' ||
    ssh_said "$1" | grep -v '^[@ ]' | tail -n 1)
  case $sw_ssh in *IDENTIFICATION*) sw_ssh="the host key is not the pinned one: Host key verification failed" ;; esac
  if [ -n "$sw_ssh" ]; then
    printf '%s\nssh said: %s\n' "$sw_said" "$sw_ssh"
  else
    printf '%s\n' "$sw_said"
  fi
}

# One restic run of a site's at a time on a server (a scheduled prune holds the repository's
# exclusive lock, which restic 0.14 does not wait for): the others wait their turn.
serialize() {
  mkdir -p /run/lock
  exec 9>"/run/lock/siteward-backup-$cfg_site"
  flock -w 7200 9 || die "another backup of $cfg_site still runs after two hours"
}

# The repository exists (made on first use: only when the store says it holds nothing there);
# a wrong password, refused credentials or an unreachable store fail, naming restic's reason.
ensure_repository() {
  if restic cat config --no-lock >/dev/null 2>"$work/cat.err"; then return 0; fi
  if nothing_there "$work/cat.err"; then
    echo "siteward-backup: creating the repository $cfg_repository" >&2
    restic init >/dev/null 2>"$work/init.err" && return 0
    echo "siteward-backup: the repository could not be created: $(reason "$work/init.err")" >&2
    return 1
  fi
  echo "siteward-backup: the repository $cfg_repository cannot be opened: $(reason "$work/cat.err")" >&2
  return 1
}

# Whether the repository is missing (the store holds nothing there); other failures are reported.
repository_missing() {
  if restic cat config --no-lock >/dev/null 2>"$work/cat.err"; then return 1; fi
  nothing_there "$work/cat.err" && return 0
  die "the repository $cfg_repository cannot be opened: $(reason "$work/cat.err")"
}

# --- the database ------------------------------------------------------------------------------

db_login() {
  case $cfg_engine:$cfg_admin_auth in
  mysql:password)
    printf '[client]\nuser="%s"\npassword="%s"\n' "$cfg_admin_user" \
      "$(sed 's/\\/\\\\/g; s/"/\\"/g' "$work/admin_password")" >"$work/my.cnf"
    ;;
  postgres:password)
    printf '*:*:*:%s:%s\n' "$cfg_admin_user" "$(sed 's/\\/\\\\/g; s/:/\\:/g' "$work/admin_password")" >"$work/pgpass"
    PGPASSFILE=$work/pgpass PGHOST=127.0.0.1 PGUSER=$cfg_admin_user
    export PGPASSFILE PGHOST PGUSER
    ;;
  esac
}

# as_admin PROGRAM ARGS...: a database client logged in as the administrator.
as_admin() {
  case $cfg_engine:$cfg_admin_auth in
  mysql:password) sw_p=$1; shift; "$sw_p" --defaults-extra-file="$work/my.cnf" "$@" ;;
  mysql:*) sw_p=$1; shift; "$sw_p" --user="${cfg_admin_user:-root}" "$@" ;;
  postgres:password) "$@" ;;
  postgres:*) runuser -u "${cfg_admin_user:-postgres}" -- "$@" ;;
  esac
}

mysql_tool() {
  for sw_t in "$@"; do command -v "$sw_t" >/dev/null 2>&1 && { echo "$sw_t"; return 0; }; done
  echo "$1"
}

# The database to stdout, consistent (one transaction for the rows); a failing dump records its
# status in $work/dump.failed. MySQL/MariaDB: the schema with routines and events, the rows,
# then the triggers, DEFINER clauses removed from the schema and the triggers only.
dump_database() {
  case $cfg_engine in
  mysql)
    sw_dump=$(mysql_tool mariadb-dump mysqldump)
    set -- "$sw_dump" --single-transaction --default-character-set=utf8mb4
    { as_admin "$@" --no-data --skip-triggers --routines --events -- "$cfg_database" || echo $? >>"$work/dump.failed"; } |
      sed 's/DEFINER=`[^`]*`@`[^`]*`//g'
    mysql_rows
    { as_admin "$@" --no-data --no-create-info --triggers -- "$cfg_database" || echo $? >>"$work/dump.failed"; } |
      sed 's/DEFINER=`[^`]*`@`[^`]*`//g'
    ;;
  postgres)
    { as_admin pg_dump -Fc -Z0 -d "$cfg_database" || echo $? >>"$work/dump.failed"; }
    ;;
  esac
}

# The statement that writes, for each base table, two statements: one selecting the INSERT
# that starts its rows (`INSERT INTO t (columns) VALUES`), one selecting each row as a line
# `(v1,v2,...)`. Each value is selected as its stored bytes (the binary character set, quoted by
# QUOTE, a newline written `\n` so that a row is one line); FLOAT as DOUBLE, which prints all of
# its digits (a dump prints six: 0.1234567 would come back as 0.123457); BIT as a number;
# generated columns are left to the server that loads the rows. Sequences are not tables here:
# the schema part puts them back (mariadb-dump writes their SETVAL).
mysql_rows_selects() {
  cat <<'SQL'
SET SESSION group_concat_max_len = 1073741824;
SELECT CONCAT('SELECT ', QUOTE(CONCAT('INSERT INTO `', REPLACE(c.TABLE_NAME, '`', '``'), '` (',
    GROUP_CONCAT('`', REPLACE(c.COLUMN_NAME, '`', '``'), '`' ORDER BY c.ORDINAL_POSITION SEPARATOR ','),
    ') VALUES')), ';\n',
  'SELECT CONCAT(''('', ', GROUP_CONCAT(CASE c.DATA_TYPE
      WHEN 'bit' THEN CONCAT('IFNULL(`', REPLACE(c.COLUMN_NAME, '`', '``'), '` + 0, ''NULL'')')
      WHEN 'float' THEN CONCAT('QUOTE(CAST(`', REPLACE(c.COLUMN_NAME, '`', '``'), '` AS DOUBLE))')
      ELSE CONCAT('REPLACE(QUOTE(CAST(`', REPLACE(c.COLUMN_NAME, '`', '``'), '` AS BINARY)), CHAR(10), CHAR(92, 110))')
    END ORDER BY c.ORDINAL_POSITION SEPARATOR ', '','', '),
  ', '')'') FROM `', REPLACE(c.TABLE_NAME, '`', '``'), '`;')
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'
  AND NOT (c.EXTRA LIKE '%GENERATED%' AND c.EXTRA NOT LIKE '%DEFAULT_GENERATED%')
GROUP BY c.TABLE_NAME ORDER BY c.TABLE_NAME;
SQL
}

# The rows of every base table to stdout, from one consistent snapshot, as INSERT statements of
# about a megabyte each (awk groups the row lines under their table's INSERT), between settings
# that load them as they were: the binary character set, UTC for TIMESTAMPs, a zero kept in an
# AUTO_INCREMENT column, no key checks. Written here rather than by mariadb-dump, which prints
# FLOAT with six digits.
mysql_rows() {
  sw_client=$(mysql_tool mariadb mysql)
  set -- "$sw_client" --batch --raw --skip-column-names --quick --max-allowed-packet=1G -- "$cfg_database"
  mysql_rows_selects | as_admin "$@" >"$work/rows.sql" || { echo $? >>"$work/dump.failed"; return 0; }
  echo "/*!40101 SET NAMES binary */;"
  echo "SET @sw_fk = @@FOREIGN_KEY_CHECKS, @sw_uc = @@UNIQUE_CHECKS, @sw_mode = @@SQL_MODE, @sw_tz = @@TIME_ZONE;"
  echo "SET FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0, SQL_MODE = 'NO_AUTO_VALUE_ON_ZERO', TIME_ZONE = '+00:00';"
  {
    echo "SET NAMES binary, TIME_ZONE = '+00:00';"
    echo "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;"
    echo "START TRANSACTION WITH CONSISTENT SNAPSHOT;"
    cat "$work/rows.sql"
    echo "COMMIT;"
  } | { as_admin "$@" || echo $? >>"$work/dump.failed"; } | awk -v limit=1048576 '
    function finish() { if (open) printf ";\n"; open = 0 }
    /^INSERT INTO / { finish(); header = $0; next }
    substr($0, 1, 1) == "(" {
      if (open && size + length($0) > limit) finish()
      if (open) printf ",\n%s", $0
      else { printf "%s\n%s", header, $0; open = 1; size = 0 }
      size += length($0) + 2
      next
    }
    { finish(); print }
    END { finish() }'
  echo "SET FOREIGN_KEY_CHECKS = @sw_fk, UNIQUE_CHECKS = @sw_uc, SQL_MODE = @sw_mode, TIME_ZONE = @sw_tz;"
  echo "/*!40101 SET NAMES utf8mb4 */;"
}

dump_name() {
  case $cfg_engine in mysql) echo "$cfg_database.sql" ;; postgres) echo "$cfg_database.pgdump" ;; esac
}

# Loads $stage/database.gz into the database, made again empty with its charset and collation.
load_database() {
  case $cfg_engine in
  mysql)
    sw_client=$(mysql_tool mariadb mysql)
    {
      printf 'DROP DATABASE IF EXISTS `%s`;\nCREATE DATABASE `%s`' "$cfg_database" "$cfg_database"
      [ -z "$cfg_charset" ] || printf ' CHARACTER SET %s' "$cfg_charset"
      [ -z "$cfg_collation" ] || printf ' COLLATE %s' "$cfg_collation"
      printf ';\n'
    } | as_admin "$sw_client" --batch
    { gzip -dc "$stage/database.gz" || echo $? >>"$work/load.failed"; } |
      as_admin "$sw_client" --default-character-set=utf8mb4 --max-allowed-packet=1G --batch "$cfg_database"
    ;;
  postgres)
    {
      printf 'DROP DATABASE IF EXISTS "%s" WITH (FORCE);\nCREATE DATABASE "%s"' "$cfg_database" "$cfg_database"
      [ -z "$cfg_db_owner" ] || printf ' OWNER "%s"' "$cfg_db_owner"
      [ -z "$cfg_charset" ] || printf " ENCODING '%s'" "$cfg_charset"
      [ -z "$cfg_collation" ] || printf " LC_COLLATE '%s' LC_CTYPE '%s' TEMPLATE template0" "$cfg_collation" "$cfg_collation"
      printf ';\n'
    } | as_admin psql -X -q -v ON_ERROR_STOP=1 -d postgres
    { gzip -dc "$stage/database.gz" || echo $? >>"$work/load.failed"; } |
      as_admin pg_restore --exit-on-error --single-transaction --no-owner ${cfg_db_owner:+--role="$cfg_db_owner"} -d "$cfg_database"
    ;;
  esac
  [ ! -s "$work/load.failed" ] || die "the database dump could not be read"
}

# --- the files ---------------------------------------------------------------------------------

# The site's paths under `shared` (comma-separated), one per line, those that exist.
each_path() {
  sw_rest=$cfg_paths
  while [ -n "$sw_rest" ]; do
    sw_one=${sw_rest%%,*}
    case /$sw_one/ in */../* | */./* | *//*) die "the path $sw_one leaves the site" ;; esac
    [ -e "$1/$sw_one" ] || [ -L "$1/$sw_one" ] && printf '%s\n' "$sw_one"
    [ "$sw_one" = "$sw_rest" ] && break
    sw_rest=${sw_rest#*,}
  done
}

# --- status ------------------------------------------------------------------------------------

# status KEY=VALUE...: the site's backup status (read by siteward's probe), written atomically;
# the last success's facts are kept from the previous status when this run failed.
write_status() {
  mkdir -p "$status_dir"
  sw_tmp=$(mktemp "$status_dir/.backup-status.XXXXXX")
  {
    for sw_kv in "$@"; do printf '%s\n' "$sw_kv"; done
    echo "stale_after=$cfg_stale_after"
    if [ -f "$status_dir/backup-status" ]; then
      case " $* " in
      *" result=ok "*) ;;
      *) grep '^last_ok' "$status_dir/backup-status" || true ;;
      esac
      grep '^check_' "$status_dir/backup-status" || true
    fi
  } >"$sw_tmp"
  mv -f "$sw_tmp" "$status_dir/backup-status"
}

update_check_status() {
  mkdir -p "$status_dir"
  sw_tmp=$(mktemp "$status_dir/.backup-status.XXXXXX")
  { grep -v '^check_' "$status_dir/backup-status" 2>/dev/null || true; printf '%s\n' "$@"; } >"$sw_tmp"
  mv -f "$sw_tmp" "$status_dir/backup-status"
}

summary_field() { sed -n 's/.*"message_type":"summary".*"'"$2"'":\([^,}]*\).*/\1/p' "$1" | tr -d '"' | tail -n 1; }

# --- actions -----------------------------------------------------------------------------------

# One run: the database piped into restic (a failing dump fails the run and its snapshot is
# forgotten), then the storage and `.env` as files; both snapshots share the run's time and tag.
backup() {
  restic_env
  db_login
  run=$(date +%s)
  at=$(date -d "@$run" '+%Y-%m-%d %H:%M:%S')
  started=$(date +%s)
  if ! ensure_repository 2>"$work/repo.err"; then
    cat "$work/repo.err" >&2
    write_status result=failed "finished=$(date +%s)" "message=$(tail -n 1 "$work/repo.err")"
    exit 1
  fi
  tags=siteward,site=$cfg_site,server=$cfg_server,run=$run
  db_id=
  if [ -n "$cfg_engine" ]; then
    echo "part database"
    : >"$work/dump.failed"
    dump_database | {
      restic backup --json --stdin --stdin-filename "$(dump_name)" --host "$cfg_site" \
        --time "$at" --tag "$tags,kind=database" || echo "restic $?" >>"$work/dump.failed"
    } | tee "$work/database.json"
    db_id=$(summary_field "$work/database.json" snapshot_id)
    if [ -s "$work/dump.failed" ]; then
      [ -z "$db_id" ] || restic forget "$db_id" >/dev/null 2>&1 || true
      write_status result=failed "finished=$(date +%s)" "message=the database dump failed (status $(head -n 1 "$work/dump.failed"))"
      die "the database dump of $cfg_database failed; its snapshot was forgotten"
    fi
  fi
  echo "part files"
  set --
  each_path "$cfg_shared" >"$work/paths"
  while IFS= read -r sw_p; do set -- "$@" "$cfg_shared/$sw_p"; done <"$work/paths"
  [ $# -gt 0 ] || set -- "$cfg_shared"
  restic backup --json --host "$cfg_site" --time "$at" --tag "$tags,kind=files,shared=$cfg_shared" -- "$@" \
    >"$work/files.json" 2>"$work/files.err" || {
    cat "$work/files.err" >&2
    [ -z "$db_id" ] || restic forget "$db_id" >/dev/null 2>&1 || true
    write_status result=failed "finished=$(date +%s)" "message=$(tail -n 1 "$work/files.err")"
    die "the backup of the files failed"
  }
  cat "$work/files.json"
  files_id=$(summary_field "$work/files.json" snapshot_id)
  bytes=0
  # Each snapshot carries its size in a tag (restic 0.14 lists none): `siteward backups` shows
  # sizes without reading the repository's trees. Tagging gives a snapshot a new id.
  for sw_kind in database files; do
    [ -f "$work/$sw_kind.json" ] || continue
    sw_b=$(summary_field "$work/$sw_kind.json" total_bytes_processed)
    bytes=$((bytes + ${sw_b:-0}))
    sw_id=$(summary_field "$work/$sw_kind.json" snapshot_id)
    [ -z "$sw_id" ] || restic tag --add "size=${sw_b:-0}" "$sw_id" >/dev/null 2>&1 || true
  done
  restic snapshots --json --tag "run=$run,site=$cfg_site" >"$work/run.json"
  db_id=$(tr '{' '\n' <"$work/run.json" | grep '"kind=database"' | sed -n 's/.*"short_id":"\([0-9a-f]*\)".*/\1/p' | head -n 1)
  files_id=$(tr '{' '\n' <"$work/run.json" | grep '"kind=files"' | sed -n 's/.*"short_id":"\([0-9a-f]*\)".*/\1/p' | head -n 1)
  finished=$(date +%s)
  write_status result=ok "time=$run" "finished=$finished" "seconds=$((finished - started))" \
    "bytes=$bytes" "database=$db_id" "files=$files_id" "last_ok=$run" "last_ok_bytes=$bytes" \
    "last_ok_snapshots=$db_id $files_id"
  echo "result ok $run ${db_id:--} ${files_id:--} $bytes"
  forget
}

# Retention, per kind (so that each run keeps both its halves), then prune.
forget() {
  for sw_kind in database files; do
    restic forget --group-by host --tag "site=$cfg_site,kind=$sw_kind" --keep-last 1 \
      --keep-daily "$cfg_keep_daily" --keep-weekly "$cfg_keep_weekly" \
      --keep-monthly "$cfg_keep_monthly" >"$work/forget.out" 2>&1 || {
      cat "$work/forget.out" >&2
      die "forgetting old snapshots failed"
    }
  done
  restic prune >"$work/prune.out" 2>&1 || { cat "$work/prune.out" >&2; die "pruning the repository failed"; }
  echo "pruned"
}

check() {
  restic_env
  ! repository_missing || die "the repository $cfg_repository does not exist"
  sw_at=$(date +%s)
  if restic check "$@" >"$work/check.out" 2>&1; then
    update_check_status "check_time=$sw_at" check_result=ok
    cat "$work/check.out"
  else
    update_check_status "check_time=$sw_at" check_result=failed "check_message=$(tail -n 1 "$work/check.out")"
    cat "$work/check.out" >&2
    die "the repository check failed"
  fi
}

# The snapshots of a run restored into the staging directory; nothing else changes.
fetch() {
  restic_env
  sw_db=$1 sw_name=$2 sw_files=$3 sw_shared=$4
  ! repository_missing || die "the repository $cfg_repository does not exist"
  discard_stage
  mkdir -p "$stage/files"
  if [ "$sw_db" != - ]; then
    echo "part database"
    : >"$work/dump.failed"
    { restic dump "$sw_db" "$sw_name" || echo $? >>"$work/dump.failed"; } | gzip -1 -c >"$stage/database.gz"
    [ ! -s "$work/dump.failed" ] || die "the database of snapshot $sw_db could not be read"
  fi
  if [ "$sw_files" != - ]; then
    echo "part files"
    restic restore "$sw_files" --target "$stage/restic" >&2 || die "the files of snapshot $sw_files could not be restored"
    if [ -d "$stage/restic$sw_shared" ]; then mv "$stage/restic$sw_shared" "$stage/files/shared"; fi
    rm -rf "$stage/restic"
  fi
  echo fetched
}

receive_database() {
  mkdir -p "$stage/files"
  cat >"$stage/database.gz"
  gzip -t "$stage/database.gz" || die "the database dump received is not gzip"
}

receive_env() {
  mkdir -p "$stage/files/shared"
  [ -z "$cfg_owner" ] || chown "$cfg_owner:$cfg_owner" "$stage/files/shared"
  cat >"$stage/files/shared/.env"
}

receive_files() {
  mkdir -p "$stage/files/shared"
  tar -xzf - -C "$stage/files/shared" --no-same-owner
}

# The staged run put in place: the database loaded again, each path swapped in (owned by the
# site's user), then the staging directory removed.
apply_stage() {
  [ -d "$stage/files" ] || die "nothing is staged for $cfg_site"
  db_login
  if [ -n "$cfg_engine" ] && [ -f "$stage/database.gz" ]; then
    load_database
    echo "database loaded"
  fi
  if [ -d "$stage/files/shared" ]; then
    mkdir -p "$stage/old"
    each_path "$stage/files/shared" >"$work/paths"
    while IFS= read -r sw_p; do
      mkdir -p "$(dirname "$cfg_shared/$sw_p")" "$(dirname "$stage/old/$sw_p")"
      if [ -e "$cfg_shared/$sw_p" ] || [ -L "$cfg_shared/$sw_p" ]; then mv "$cfg_shared/$sw_p" "$stage/old/$sw_p"; fi
      mv "$stage/files/shared/$sw_p" "$cfg_shared/$sw_p"
      [ -z "$cfg_owner" ] || chown -R "$cfg_owner:$cfg_owner" "$cfg_shared/$sw_p"
      [ "$sw_p" != .env ] || chmod 0640 "$cfg_shared/.env"
      echo "restored $sw_p"
    done <"$work/paths"
  fi
  discard_stage
}

discard_stage() {
  case $stage in /*/.siteward-restore.*) rm -rf "$stage" ;; esac
}

case $action in
backup | scheduled-backup | check | scheduled-check | fetch) serialize ;;
esac
case $action in
backup) backup ;;
scheduled-backup)
  mkdir -p /var/log/siteward
  exec >>"/var/log/siteward/backup-$cfg_site.log" 2>&1
  echo "--- $(date '+%Y-%m-%d %H:%M:%S') backup"
  backup | grep -v '"message_type":"status"'
  ;;
scheduled-check)
  mkdir -p /var/log/siteward
  exec >>"/var/log/siteward/backup-$cfg_site.log" 2>&1
  echo "--- $(date '+%Y-%m-%d %H:%M:%S') check"
  check
  ;;
check) check "$@" ;;
snapshots)
  restic_env
  if repository_missing; then echo '[]'; else restic snapshots --no-lock --json --tag "site=$cfg_site"; fi
  ;;
fetch) fetch "$@" ;;
receive-database) receive_database ;;
receive-files) receive_files ;;
receive-env) receive_env ;;
apply-stage) apply_stage ;;
discard-stage) discard_stage ;;
dump-database)
  db_login
  : >"$work/dump.failed"
  dump_database | gzip -1 -c
  [ ! -s "$work/dump.failed" ] || die "the database dump of $cfg_database failed"
  ;;
dump-files)
  each_path "$cfg_shared" | grep -vx '[.]env' >"$work/paths" || true
  tar -czf - -C "$cfg_shared" --verbatim-files-from -T "$work/paths"
  ;;
dump-env) if [ -f "$cfg_shared/.env" ]; then cat "$cfg_shared/.env"; fi ;;
*) die "unknown action ${action:-(none)}" ;;
esac
