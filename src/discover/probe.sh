# siteward's discovery probe. POSIX sh, read by `sh -s` on stdin, as root, in one SSH exec.
#
# It only reads: it writes nothing on the server outside its own temporary directory, runs no
# application code (no php, no artisan, no git: git state is read from the files in .git) and
# never logs in with an application's credentials (databases are read as root over the socket
# and as postgres by peer authentication).
#
# The answer is one record per line: `TAG<TAB>NAME<TAB>CONTENT`, NAME and CONTENT base64;
# the last records are `done` and `end<TAB>N` (N records before it). Mapping facts to sites happens in Rust
# (discover/answer.rs). Files in directories that site users control are read only when they
# are plain files reached without symlinks (a `.env` linked to /etc/shadow is not read).

set -u
umask 077
dp_tab='	'
dp_limit=4194304

# dp_rec TAG NAME: one record whose content is stdin (at most dp_limit bytes).
dp_rec() {
  printf '%s\t%s\t' "$1" "$(printf '%s' "$2" | base64 -w0)"
  head -c "$dp_limit" | base64 -w0
  printf '\n'
}

# dp_text TAG NAME VALUE
dp_text() { printf '%s' "$3" | dp_rec "$1" "$2"; }

# dp_plain PATH...: every PATH exists and is no symlink, the last one a regular file.
dp_plain() {
  for dp_p in "$@"; do [ -L "$dp_p" ] && return 1; done
  [ -f "$dp_p" ]
}

# dp_file TAG PATH: a root-owned configuration file, when it is a regular file.
dp_file() { [ -f "$2" ] && dp_rec "$1" "$2" <"$2"; }

dp_is_id() { case $1 in '' | -* | .* | *[!A-Za-z0-9._-]*) return 1 ;; esac; }

dp_server() {
  dp_text host hostname "$(cat /proc/sys/kernel/hostname 2>/dev/null)"
  for dp_d in /etc/php/*/fpm; do [ -d "$dp_d" ] && dp_text php "${dp_d%/fpm}" ""; done
  if command -v nginx >/dev/null 2>&1; then
    nginx -T >"$dp_tmp/nginx.T" 2>"$dp_tmp/nginx.err"
    dp_rec nginx -T <"$dp_tmp/nginx.T"
    dp_rec nginx-check stderr <"$dp_tmp/nginx.err"
    for dp_f in /etc/nginx/sites-enabled/*; do
      [ -L "$dp_f" ] && dp_text nginx-link "$dp_f" "$(readlink -f "$dp_f")"
    done
  fi
  for dp_f in /etc/php/*/fpm/pool.d/*.conf; do dp_file pool "$dp_f"; done
  for dp_f in /etc/supervisor/conf.d/*.conf /etc/supervisor/conf.d/*.ini; do dp_file program "$dp_f"; done
  dp_file crontab /etc/crontab
  for dp_f in /etc/cron.d/*; do dp_file cron.d "$dp_f"; done
  for dp_f in /var/spool/cron/crontabs/*; do dp_file user-crontab "$dp_f"; done
  command -v supervisorctl >/dev/null 2>&1 && supervisorctl status 2>/dev/null | dp_rec processes supervisor
  dp_systemd_workers
  dp_databases
  dp_panels
}

# Workers that systemd runs (a unit whose command runs artisan): reported, not expressible.
dp_systemd_workers() {
  for dp_f in /etc/systemd/system/*.service; do
    [ -f "$dp_f" ] && grep -q 'artisan' "$dp_f" 2>/dev/null && dp_file systemd "$dp_f"
  done
}

dp_databases() {
  if command -v mysql >/dev/null 2>&1; then
    { mariadbd --version 2>/dev/null || mysqld --version 2>/dev/null; } | dp_rec version mysql
    mysql --batch --skip-column-names -e "
      SELECT 'database', SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME
        FROM information_schema.SCHEMATA;
      SELECT 'user', User, Host FROM mysql.user;
      SELECT 'grant', GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES;
      SELECT 'global', GRANTEE, '*', PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES;" \
      2>"$dp_tmp/mysql.err" | dp_rec databases mysql
    dp_rec database-error mysql <"$dp_tmp/mysql.err"
  fi
  if command -v psql >/dev/null 2>&1 && id postgres >/dev/null 2>&1; then
    (cd / && runuser -u postgres -- psql -XAt -F "$dp_tab" -v ON_ERROR_STOP=1 -c "
      SELECT 'database', datname, pg_encoding_to_char(encoding), datcollate, pg_get_userbyid(datdba)
        FROM pg_database WHERE NOT datistemplate;
      SELECT 'user', rolname, '' FROM pg_roles WHERE rolcanlogin;
      SELECT 'version', current_setting('server_version_num');") \
      2>"$dp_tmp/pg.err" | dp_rec databases postgres
    dp_rec database-error postgres <"$dp_tmp/pg.err"
  fi
}

# What says a panel is still attached: its keys' comments (never the keys), its directories.
dp_panels() {
  for dp_f in /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys; do
    [ -f "$dp_f" ] || continue
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(ssh-|ecdsa-|sk-)/) { c = ""; for (j = i + 2; j <= NF; j++) c = c (c == "" ? "" : " ") $j; print NR "\t" c; break } }' \
      "$dp_f" | dp_rec keys "$dp_f"
  done
  for dp_d in /home/forge/.forge /etc/nginx/forge-conf /home/*/.logs/workers; do
    [ -d "$dp_d" ] && dp_text panel-dir "$dp_d" ""
  done
}

# --- site roots ----------------------------------------------------------------------------------

# Candidate roots: every nginx `root` and its parents up to the one just below /home/USER,
# /var/www or /srv (the web directory, `current`, a release may sit between).
dp_candidates() {
  awk '$1 == "root" { r = $2; sub(/;$/, "", r); gsub(/["'\'']/, "", r); print r }' "$dp_tmp/nginx.T" |
    sort -u | while IFS= read -r dp_r; do
      dp_up=$dp_r
      while :; do
        case $dp_up in /home/*/*/* | /var/www/*/* | /srv/*/*) ;; /home/*/* | /var/www/* | /srv/*) echo "$dp_up"; break ;; *) break ;; esac
        echo "$dp_up"
        dp_up=${dp_up%/*}
      done
    done | sort -u | grep -v '[[:space:]]'
}

# dp_root DIR: the facts of one candidate root, as `key value` lines, and the files worth reading.
dp_root() {
  dp_d=$1
  [ -d "$dp_d" ] && ! [ -L "$dp_d" ] || return 0
  {
    printf 'owner %s\n' "$(stat -c '%U %G' "$dp_d")"
    for dp_n in .git .env artisan composer.json composer.lock current releases shared .dep REVISION storage public; do
      if [ -L "$dp_d/$dp_n" ]; then
        printf 'link %s %s\n' "$dp_n" "$(readlink "$dp_d/$dp_n")"
      elif [ -d "$dp_d/$dp_n" ]; then
        printf 'dir %s\n' "$dp_n"
      elif [ -f "$dp_d/$dp_n" ]; then
        printf 'file %s\n' "$dp_n"
      fi
    done
    [ -d "$dp_d/releases" ] && ! [ -L "$dp_d/releases" ] &&
      for dp_n in "$dp_d"/releases/*; do [ -d "$dp_n" ] && printf 'release %s\n' "${dp_n##*/}"; done
    [ -d "$dp_d/shared" ] && ! [ -L "$dp_d/shared" ] &&
      for dp_n in "$dp_d"/shared/* "$dp_d"/shared/.env; do [ -e "$dp_n" ] && printf 'shared %s\n' "${dp_n##*/}"; done
    for dp_n in storage/app storage/app/public storage/app/private storage/logs; do
      [ -d "$dp_d/$dp_n" ] && ! [ -L "$dp_d/$dp_n" ] && printf 'storage %s\n' "$dp_n"
    done
  } | dp_rec root "$dp_d"
  for dp_n in .env shared/.env .git/HEAD .git/config .git/packed-refs .dep/latest_release .dep/releases_log .dep/repo/config composer.lock; do
    dp_user_file "$dp_d" "$dp_n"
  done
  dp_git_ref "$dp_d"
  dp_release_files "$dp_d"
}

# dp_user_file ROOT RELATIVE: a file in a user's directory, plain and reached without symlinks.
dp_user_file() {
  dp_path=$1 dp_chain=$1 dp_rest=$2
  while [ -n "$dp_rest" ]; do
    dp_path=$dp_path/${dp_rest%%/*}
    dp_chain="$dp_chain $dp_path"
    case $dp_rest in */*) dp_rest=${dp_rest#*/} ;; *) dp_rest= ;; esac
  done
  # shellcheck disable=SC2086 # roots and names hold no blanks (dp_candidates, dp_is_id)
  dp_plain $dp_chain || return 0
  case $dp_path in
  */composer.lock) grep -A3 '"name": "laravel/framework"' "$dp_path" | dp_rec user-file "$dp_path" ;;
  */releases_log) tail -n 50 "$dp_path" | dp_rec user-file "$dp_path" ;;
  *) dp_rec user-file "$dp_path" <"$dp_path" ;;
  esac
}

# The ref HEAD names (`ref: refs/heads/main`), read from its loose file.
dp_git_ref() {
  dp_plain "$1" "$1/.git" "$1/.git/HEAD" || return 0
  read -r dp_h <"$1/.git/HEAD" || return 0
  case $dp_h in "ref: refs/heads/"*) ;; *) return 0 ;; esac
  dp_ref=${dp_h#ref: }
  case $dp_ref in *..* | *[!A-Za-z0-9._/-]*) return 0 ;; esac
  dp_user_file "$1" ".git/$dp_ref"
}

# The live release's REVISION (Deployer) when `current` points into releases/.
dp_release_files() {
  [ -L "$1/current" ] || return 0
  dp_target=$(readlink "$1/current")
  dp_id=${dp_target%/}
  dp_id=${dp_id##*/}
  dp_is_id "$dp_id" || return 0
  for dp_n in REVISION .siteward-revision composer.lock; do
    dp_user_file "$1" "releases/$dp_id/$dp_n"
  done
  dp_plain "$1/releases" "$1/releases/$dp_id/artisan" && dp_text release-artisan "$1" "$dp_id"
  return 0
}

# Certificates nginx serves: names, issuer, expiry (never anything of the key).
dp_certificates() {
  command -v openssl >/dev/null 2>&1 || return 0
  awk '$1 == "ssl_certificate" { c = $2; sub(/;$/, "", c); gsub(/["'\'']/, "", c); print c }' "$dp_tmp/nginx.T" |
    sort -u | while IFS= read -r dp_c; do
      [ -f "$dp_c" ] || continue
      openssl x509 -in "$dp_c" -noout -subject -issuer -enddate -nameopt RFC2253 \
        -ext subjectAltName 2>/dev/null | dp_rec certificate "$dp_c"
    done
}

dp_main() {
  dp_server
  if [ -f "$dp_tmp/nginx.T" ]; then
    dp_candidates >"$dp_tmp/roots"
    while IFS= read -r dp_r; do dp_root "$dp_r"; done <"$dp_tmp/roots"
    dp_certificates
  fi
  dp_text done - ""
}

dp_tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$dp_tmp"' EXIT
printf 'siteward-discover 1\n'
dp_main | awk '{ print } END { printf "end\t%d\n", NR }'

