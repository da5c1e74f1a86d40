# siteward's observation probe. POSIX sh, read by `sh -s` on stdin, as root, in one SSH exec.
#
# probe.rs prepends the request: `sw_request` (one `sw_site` call per site the specs place on
# this server, every argument quoted by transport::quote) and the admin logins (secrets only
# here, in the script text on stdin, never in a process argument or the environment).
#
# The answer on stdout is one record per line: a tag and tab-separated fields; text fields are
# base64 (`-` when absent), numbers and tokens are plain; the last line is `end <records>`.
# The script collects raw facts with a fixed number of processes, whatever the number of sites
# (one find, one sha256sum, one tar, one database query per engine, one supervisor query...);
# per site it uses shell builtins only, except `git` for in-place checkouts. Mapping the facts
# to sites happens in Rust (probe/assemble.rs). Every value that reaches a command comes from a
# checked allow-list or is passed as a quoted word; files in site users' directories are read
# only when they are plain files reached without symlinks, and their content is validated.

sw_tab='	'
sw_nl='
'

# --- output ------------------------------------------------------------------------------------

# sw_rec TAG FIELD...: one record into the shell's stream. Fields starting with `~` are text
# that the final awk encodes; `^` marks text that is base64 already; others are plain.
sw_rec() {
  sw_line=$1
  shift
  for sw_f in "$@"; do sw_line="$sw_line$sw_tab$sw_f"; done
  printf '%s\n' "$sw_line" >&3
}

# sw_text VALUE: sets sw_t to VALUE as a text field (forks only for values with tabs/newlines).
sw_text() {
  case $1 in
  *"$sw_tab"* | *"$sw_nl"*) sw_t=^$(printf '%s' "$1" | base64 -w0) ;;
  *) sw_t=~$1 ;;
  esac
}

# sw_problem SITE TOPIC MESSAGE: something the probe could not look at.
sw_problem() {
  sw_ps=-
  [ "$1" = - ] || { sw_text "$1" && sw_ps=$sw_t; }
  sw_text "$3"
  sw_rec problem "$sw_ps" "~$2" "$sw_t"
}

# sw_arg LIST VALUE: appends one line to the argument list file LIST.
sw_arg() { printf '%s\n' "$2" >>"$sw_tmp/$1"; }

# --- allow-lists -------------------------------------------------------------------------------

sw_is_name() { case $1 in '' | -* | *[!A-Za-z0-9_-]*) return 1 ;; esac; }
sw_is_domain() { case $1 in '' | -* | .* | *..* | *[!A-Za-z0-9.:*-]*) return 1 ;; esac; }
sw_is_version() { case $1 in '' | *[!0-9.]*) return 1 ;; esac; }
sw_is_names() { case $1 in *[!A-Za-z0-9_,-]*) return 1 ;; esac; }
sw_is_id() { case $1 in '' | -* | .* | *[!A-Za-z0-9._-]*) return 1 ;; esac; }
sw_is_relpath() {
  case $1 in '' | /* | '~'* | *"$sw_tab"* | *"$sw_nl"* | *,* | *\\*) return 1 ;; esac
  case /$1/ in */../* | */./* | *//*) return 1 ;; esac
}
sw_is_engine() { case $1 in '' | mysql | mariadb | postgres) return 0 ;; esac; return 1; }

# sw_plain PATH...: every PATH exists and is no symlink, the last one a regular file.
sw_plain() {
  for sw_pp in "$@"; do [ -L "$sw_pp" ] && return 1; done
  [ -f "$sw_pp" ]
}

# --- the server --------------------------------------------------------------------------------

sw_scan_processes() {
  sw_running=' '
  for sw_p in /proc/[0-9]*/comm; do
    { read -r sw_c <"$sw_p"; } 2>/dev/null || continue
    case $sw_running in *" $sw_c "*) ;; *) sw_running="$sw_running$sw_c " ;; esac
  done
}

sw_runs() {
  for sw_r in "$@"; do case $sw_running in *" $sw_r "*) return 0 ;; esac; done
  return 1
}

sw_installed() {
  for sw_i in "$@"; do command -v "$sw_i" >/dev/null 2>&1 && return 0; done
  return 1
}

sw_flag() { if "$@"; then sw_v=1; else sw_v=0; fi; }

# sw_service NAME INSTALLED-PROGRAMS... -- PROCESS-NAMES...
sw_service() {
  sw_name=$1
  shift
  sw_progs=
  while [ "$1" != -- ]; do sw_progs="$sw_progs $1"; shift; done
  shift
  # shellcheck disable=SC2086
  sw_flag sw_installed $sw_progs
  sw_inst=$sw_v
  sw_flag sw_runs "$@"
  sw_rec service "$sw_name" "$sw_inst" "$sw_v"
}

sw_server() {
  sw_scan_processes
  sw_host=
  { read -r sw_host </proc/sys/kernel/hostname; } 2>/dev/null
  sw_text "$sw_host"
  sw_rec host "$sw_t"
  sw_rec clock "$(date +%s)"
  for sw_d in /etc/php/*; do
    sw_ver=${sw_d##*/}
    [ -d "$sw_d" ] && sw_is_version "$sw_ver" && sw_installed "php-fpm$sw_ver" || continue
    sw_flag sw_runs "php-fpm$sw_ver"
    sw_rec php "~$sw_ver" "$sw_v"
  done
  sw_service nginx nginx -- nginx
  sw_service mysql mariadbd mysqld -- mariadbd mysqld
  sw_pg_installed=postgres
  for sw_d in /usr/lib/postgresql/*/bin/postgres; do [ -x "$sw_d" ] && sw_pg_installed=$sw_d; done
  sw_service postgresql "$sw_pg_installed" -- postgres postmaster
  sw_service supervisor supervisord -- supervisord
  sw_service cron cron crond -- cron crond
  sw_service sshd sshd -- sshd
  sw_redis_installed=0
  sw_installed redis-server && sw_redis_installed=1
  sw_flag sw_installed certbot
  sw_rec service certbot "$sw_v" 0
  sw_managed /etc/nginx/snippets/siteward-tls.conf
  sw_unloaded
}

# Managed files written or removed that their service has not loaded yet: the apply scripts
# leave a marker (the path with `/` as `%`) until the reload succeeds (apply/scripts/reload.sh).
sw_unloaded() {
  for sw_f in /run/siteward/unloaded/*; do
    [ -e "$sw_f" ] || continue
    sw_text "${sw_f##*/}"
    sw_rec unloaded "$sw_t"
  done
}

# --- sites -------------------------------------------------------------------------------------

# sw_site NAME USER DOMAIN PHP ENGINE DBNAME DBUSERS STORAGE REPOSITORY REFERENCE
sw_site() {
  sw_requested="$sw_requested$1$sw_nl"
  sw_requested_facts="$sw_requested_facts$1|$2|$3|$4|$5|$6|$7|$8$sw_nl"
  sw_examine primary "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" || return 0
  sw_source "$9" "$2"
  [ -z "${11:-}" ] || sw_health "$1" "$3" "${11}" "${12}" "${13}" "${14}" "${15:-http}"
}

# sw_adopted SITE PATH...: the files a site's `adopt` section takes over (checked against the
# places such files live), observed as the site's managed files while they exist.
sw_adopted() {
  sw_text "$1"
  sw_as=$sw_t
  shift
  for sw_af in "$@"; do
    case $sw_af in *..* | *"$sw_tab"* | *"$sw_nl"* | *\\*) continue ;; esac
    case $sw_af in /etc/nginx/?* | /etc/php/*/fpm/pool.d/?* | /etc/supervisor/conf.d/?* | /etc/crontab | /etc/cron.d/?* | /var/spool/cron/crontabs/?*) ;; *) continue ;; esac
    [ -e "$sw_af" ] || [ -L "$sw_af" ] || continue
    sw_managed "$sw_af"
    sw_text "$sw_af"
    sw_rec adopted "$sw_as" "$sw_t"
  done
}

# sw_health SITE DOMAIN PATH STATUS BODY TIMEOUT SCHEME: the site's health check through the
# server's own nginx with the site's Host header (over HTTPS with SNI for sites with TLS; the
# certificate is not what it checks), in the background (its answer: sw_health_results).
sw_health() {
  case $3 in /*) ;; *) return 0 ;; esac
  case $4$6 in *[!0-9]*) return 0 ;; esac
  sw_installed curl || return 0
  sw_hn=$((${sw_hn:-0} + 1))
  printf '%s\n%s\n%s\n' "$1" "$4" "$5" >"$sw_tmp/health.$sw_hn.want"
  if [ "$7" = https ]; then
    set -- "$@" --insecure --resolve "$2:443:127.0.0.1" "https://$2$3"
  else
    set -- "$@" -H "Host: $2" "http://127.0.0.1$3"
  fi
  sw_to=$6
  (
    shift 7
    curl -s -o "$sw_tmp/health.$sw_hn.body" -w '%{http_code}\n' --max-time "$sw_to" \
      "$@" >"$sw_tmp/health.$sw_hn.code" 2>/dev/null
    : >"$sw_tmp/health.$sw_hn.done"
  ) &
}

# One `health SITE STATUS OK` record per check made.
sw_health_results() {
  sw_i=0
  while [ "$sw_i" -lt "${sw_hn:-0}" ]; do
    sw_i=$((sw_i + 1))
    [ -f "$sw_tmp/health.$sw_i.done" ] || continue
    { read -r sw_hs; read -r sw_hx; IFS= read -r sw_hb; } <"$sw_tmp/health.$sw_i.want"
    read -r sw_hc <"$sw_tmp/health.$sw_i.code" 2>/dev/null || sw_hc=000
    case $sw_hc in '' | *[!0-9]*) sw_hc=000 ;; esac
    sw_ok=0
    if [ "$sw_hc" = "$sw_hx" ]; then
      sw_ok=1
      [ -z "$sw_hb" ] || grep -qF -- "$sw_hb" "$sw_tmp/health.$sw_i.body" 2>/dev/null || sw_ok=0
    fi
    sw_text "$sw_hs"
    sw_rec health "$sw_t" "$sw_hc" "$sw_ok"
  done
}

# sw_examine primary|variant NAME USER DOMAIN PHP ENGINE DBNAME DBUSERS STORAGE
sw_examine() {
  sw_mode=$1
  shift
  sw_check_facts "$@" || return 1
  sw_sn=$1 sw_user=$2 sw_root=/home/$2/$3
  sw_paths "$8"
  sw_arg users "$sw_user"
  sw_databases "$5" "$6" "$7"
  [ "$sw_mode" = primary ] || return 0
  sw_managed_files
  sw_env_file
  sw_releases
  sw_live
  sw_crontab
}

sw_check_facts() {
  sw_why=
  sw_is_name "$1" || sw_why="site name"
  sw_is_name "$2" || sw_why="${sw_why:-user}"
  sw_is_domain "$3" || sw_why="${sw_why:-domain}"
  [ -z "$4" ] || sw_is_version "$4" || sw_why="${sw_why:-php version}"
  sw_is_engine "$5" || sw_why="${sw_why:-database engine}"
  [ -z "$6" ] || sw_is_name "$6" || sw_why="${sw_why:-database name}"
  sw_is_names "$7" || sw_why="${sw_why:-database users}"
  sw_storage_ok "$8" || sw_why="${sw_why:-storage paths}"
  [ -z "$sw_why" ] && return 0
  sw_problem "$1" site "not examined: its $sw_why is outside the allow-list"
  return 1
}

sw_storage_ok() {
  sw_rest=$1
  while [ -n "$sw_rest" ]; do
    sw_one=${sw_rest%%,*}
    sw_is_relpath "$sw_one" || return 1
    [ "$sw_one" = "$sw_rest" ] && break
    sw_rest=${sw_rest#*,}
  done
}

sw_paths() {
  for sw_p in "" /releases /current /shared /shared/.env /.env; do sw_arg stat "$sw_root$sw_p"; done
  sw_rest=$1
  while [ -n "$sw_rest" ]; do
    sw_one=${sw_rest%%,*}
    sw_arg stat "$sw_root/shared/$sw_one"
    sw_arg stat "$sw_root/$sw_one"
    [ "$sw_one" = "$sw_rest" ] && break
    sw_rest=${sw_rest#*,}
  done
}

# sw_managed PATH: a file siteward renders; its content travels in the blob.
sw_managed() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  sw_arg stat "$1"
  sw_plain "$1" || return 0
  sw_arg hash "$1"
  sw_arg content "$1"
  sw_rec content "~$1"
}

# sw_hashed PATH: a file siteward writes whose content the plan never shows (secrets, its own
# script): its hash only.
sw_hashed() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  sw_arg stat "$1"
  sw_plain "$1" || return 0
  sw_arg hash "$1"
}

sw_managed_files() {
  sw_managed "/etc/nginx/conf.d/siteward-$sw_sn.conf"
  sw_managed "/etc/cron.d/siteward-$sw_sn"
  sw_managed "/etc/cron.d/siteward-backup_$sw_sn"
  sw_managed "/etc/siteward/backup/$sw_sn/config"
  sw_hashed "/etc/siteward/backup/$sw_sn/secrets"
  sw_hashed "/etc/siteward/backup/$sw_sn/siteward-backup"
  sw_managed "/etc/cron.d/siteward-tls_$sw_sn"
  sw_hashed "/etc/siteward/tls/$sw_sn/fullchain.pem"
  sw_hashed "/etc/siteward/tls/$sw_sn/privkey.pem"
  sw_certificate files "/etc/siteward/tls/$sw_sn/fullchain.pem"
  sw_certificate acme "/etc/letsencrypt/live/$sw_sn/cert.pem"
  for sw_f in /etc/php/*/fpm/pool.d/"siteward-$sw_sn.conf"; do
    case $sw_f in *"$sw_tab"* | *"$sw_nl"* | *\\*) continue ;; esac
    sw_managed "$sw_f"
  done
}

# sw_certificate SOURCE FILE: the names, issuer, expiry and fingerprint of a site's certificate
# (never anything of its key), by openssl, for the sites that have one.
sw_certificate() {
  [ -f "$2" ] && sw_installed openssl || return 0
  openssl x509 -in "$2" -noout -fingerprint -sha256 -enddate -issuer -nameopt RFC2253 \
    -ext subjectAltName >"$sw_tmp/cert.$sw_sn.$1" 2>/dev/null || return 0
  sw_final kind=cert "site=$sw_sn" "source=$1" "$sw_tmp/cert.$sw_sn.$1"
}

sw_programs() {
  for sw_f in /etc/supervisor/conf.d/siteward-*.conf; do
    case $sw_f in *"$sw_tab"* | *"$sw_nl"* | *\\*) continue ;; esac
    [ -z "${sw_only:-}" ] || sw_requested_program "${sw_f##*/}" || continue
    sw_managed "$sw_f"
  done
}

# sw_requested_program FILE: whether a program file may be a requested site's
# (`siteward-<site>-<worker>.conf`).
sw_requested_program() {
  sw_rest=$sw_requested
  while [ -n "$sw_rest" ]; do
    sw_r=${sw_rest%%"$sw_nl"*}
    sw_rest=${sw_rest#*"$sw_nl"}
    case $1 in "siteward-$sw_r-"*) return 0 ;; esac
  done
  return 1
}

sw_env_file() {
  sw_envf=
  if sw_plain "$sw_root" "$sw_root/shared" "$sw_root/shared/.env"; then
    sw_envf=$sw_root/shared/.env
  elif sw_plain "$sw_root" "$sw_root/.env"; then
    sw_envf=$sw_root/.env
  fi
  [ -n "$sw_envf" ] || return 0
  sw_rec envfile "~$sw_sn" "~$sw_envf"
  sw_arg hash "$sw_envf"
  sw_arg env "site=$sw_sn"
  sw_arg env "$sw_envf"
}

sw_releases() {
  [ -d "$sw_root/releases" ] && ! [ -L "$sw_root" ] && ! [ -L "$sw_root/releases" ] || return 0
  for sw_d in "$sw_root"/releases/*; do
    [ -d "$sw_d" ] && ! [ -L "$sw_d" ] || continue
    sw_id=${sw_d##*/}
    sw_flag [ -e "$sw_d/.siteward-bad" ]
    sw_text "$sw_id"
    sw_rec release "~$sw_sn" "$sw_t" "$sw_v"
    sw_is_id "$sw_id" && sw_plain "$sw_d/.siteward-revision" || continue
    sw_final kind=revision "site=$sw_sn" "release=$sw_id" "$sw_d/.siteward-revision"
    ! sw_plain "$sw_d/.siteward-bad" || sw_final kind=bad "site=$sw_sn" "release=$sw_id" "$sw_d/.siteward-bad"
  done
}

# The live commit: the current release's revision file (siteward's, or Deployer's REVISION), else
# the in-place checkout's git state
# (git runs as the site user: never as root inside a directory its user controls).
sw_live() {
  if sw_plain "$sw_root" "$sw_root/current/.siteward-revision"; then
    sw_final kind=live "site=$sw_sn" "$sw_root/current/.siteward-revision"
  elif sw_plain "$sw_root" "$sw_root/current/REVISION"; then
    # A release Deployer made (adopted): its REVISION file names the commit.
    sw_final kind=live "site=$sw_sn" "$sw_root/current/REVISION"
  elif [ -d "$sw_root/.git" ] && ! [ -L "$sw_root" ] && ! [ -L "$sw_root/.git" ]; then
    runuser -u "$sw_user" -- sh -c 'cd "$1" || exit; git rev-parse HEAD --abbrev-ref HEAD; echo --; git config --get remote.origin.url' \
      sh "$sw_root" >"$sw_tmp/git.$sw_sn" 2>/dev/null
    sw_final kind=git "site=$sw_sn" "$sw_tmp/git.$sw_sn"
  fi
}

sw_crontab() {
  for sw_f in "/var/spool/cron/crontabs/$sw_user" "/var/spool/cron/$sw_user"; do
    sw_plain "$sw_f" || continue
    sw_final kind=crontab "user=$sw_user" "$sw_f"
    return 0
  done
}

# sw_databases ENGINE NAME USERS: remembered for one query per engine.
sw_databases() {
  case $1 in
  mysql | mariadb) sw_engine=my ;;
  postgres) sw_engine=pg ;;
  *) return 0 ;;
  esac
  [ -z "$2" ] || sw_arg "$sw_engine.dbs" "'$2'"
  sw_rest=$3
  while [ -n "$sw_rest" ]; do
    sw_one=${sw_rest%%,*}
    [ -z "$sw_one" ] || sw_arg "$sw_engine.users" "'$sw_one'"
    [ -z "$sw_one" ] || [ -z "$2" ] || sw_arg "$sw_engine.pairs" "('$sw_one', '$2')"
    [ "$sw_one" = "$sw_rest" ] && break
    sw_rest=${sw_rest#*,}
  done
}

# sw_source REPOSITORY USER: one `git ls-remote` per repository, as the user of its first site
# (their deploy keys), in the background.
sw_source() {
  [ -n "$1" ] || return 0
  case $1 in -* | *"$sw_tab"* | *"$sw_nl"*)
    sw_problem "$sw_sn" source "the repository URL is outside the allow-list"
    return 0
    ;;
  esac
  case $sw_nl$sw_repos in *"$sw_nl$1$sw_nl"*) return 0 ;; esac
  sw_repos="$sw_repos$1$sw_nl"
  sw_nrepo=$((sw_nrepo + 1))
  sw_rec source "$sw_nrepo" "~$1"
  sw_arg sources "$sw_nrepo"
  sw_arg sources "$2"
  sw_arg sources "$1"
}

sw_ls_remote_sh='if id -u "$1" >/dev/null 2>&1; then set -- runuser -u "$@"; else shift; set -- env "$@"; fi
exec "$@"'

sw_ls_remotes() {
  [ -f "$sw_tmp/sources" ] || return 0
  while IFS= read -r sw_n && IFS= read -r sw_u && IFS= read -r sw_url; do
    sw_job "refs.$sw_n" sh -c "$sw_ls_remote_sh" sh "$sw_u" -- env GIT_TERMINAL_PROMPT=0 \
      GIT_SSH_COMMAND="ssh -oBatchMode=yes -oConnectTimeout=10" timeout 20 git ls-remote -- "$sw_url" &
  done <"$sw_tmp/sources"
}

sw_refs_results() {
  [ -f "$sw_tmp/sources" ] || return 0
  while IFS= read -r sw_n && IFS= read -r sw_u && IFS= read -r sw_url; do
    [ -f "$sw_tmp/refs.$sw_n.rc" ] || continue
    read -r sw_rc <"$sw_tmp/refs.$sw_n.rc"
    if [ "$sw_rc" = 0 ]; then
      sw_final kind=refs "source=$sw_n" "$sw_tmp/refs.$sw_n.out"
    else
      sw_problem - source "git ls-remote of source $sw_n exited with status $sw_rc"
      sw_final kind=problem topic=source "$sw_tmp/refs.$sw_n.err"
    fi
  done <"$sw_tmp/sources"
}

# sw_final ARG...: operands of the final awk (variable assignments and files).
sw_final() { for sw_a in "$@"; do sw_arg final "$sw_a"; done; }

# --- siteward's records ------------------------------------------------------------------------

sw_recorded() {
  for sw_d in /var/lib/siteward/sites/*; do
    [ -d "$sw_d" ] || continue
    sw_sn=${sw_d##*/}
    sw_text "$sw_sn"
    sw_rec recorded "$sw_t"
    if ! sw_is_name "$sw_sn"; then
      sw_problem "$sw_sn" record "not examined: the record's directory name is outside the allow-list"
      continue
    fi
    case $sw_nl$sw_requested in
    *"$sw_nl$sw_sn$sw_nl"*) sw_mode=variant ;;
    *) sw_mode=primary ;;
    esac
    # A probe for some sites only (the daemon's run of one site) lists the others, no more.
    [ "$sw_mode" = primary ] && [ -n "${sw_only:-}" ] && continue
    for sw_k in facts lock journal backup-status; do
      sw_plain "$sw_d" "$sw_d/$sw_k" && sw_final "kind=$sw_k" "site=$sw_sn" "$sw_d/$sw_k"
    done
    sw_read_facts "$sw_d/facts"
    # A requested site whose record says the same needs no second look.
    case $sw_nl$sw_requested_facts in
    *"$sw_nl$sw_sn|$sw_fu|$sw_fd|$sw_fp|$sw_fe|$sw_fn|$sw_fus|$sw_fs$sw_nl"*) continue ;;
    esac
    if [ -z "$sw_fu$sw_fd" ]; then
      [ "$sw_mode" = variant ] || sw_problem "$sw_sn" record "not examined: its facts name no user and domain"
      continue
    fi
    sw_examine "$sw_mode" "$sw_sn" "$sw_fu" "$sw_fd" "$sw_fp" "$sw_fe" "$sw_fn" "$sw_fus" "$sw_fs"
  done
}

sw_read_facts() {
  sw_fu= sw_fd= sw_fp= sw_fe= sw_fn= sw_fus= sw_fs=
  sw_plain "$1" || return 0
  while IFS= read -r sw_l || [ -n "$sw_l" ]; do
    case $sw_l in
    user=*) sw_fu=${sw_l#*=} ;;
    domain=*) sw_fd=${sw_l#*=} ;;
    php=*) sw_fp=${sw_l#*=} ;;
    dbEngine=*) sw_fe=${sw_l#*=} ;;
    dbName=*) sw_fn=${sw_l#*=} ;;
    dbUsers=*) sw_fus=${sw_l#*=} ;;
    storage=*) sw_fs=${sw_l#*=} ;;
    esac
  done <"$1"
}

# --- batched commands --------------------------------------------------------------------------

# sw_list NAME: sets the positional parameters of the caller's `eval` to the lines of list NAME.
sw_load() {
  sw_n=0
  sw_words=
  [ -f "$sw_tmp/$1" ] || return 0
  while IFS= read -r sw_l; do
    sw_n=$((sw_n + 1))
    eval "sw_w_$sw_n=\$sw_l"
    sw_words="$sw_words \"\$sw_w_$sw_n\""
  done <"$sw_tmp/$1"
}

sw_stat() {
  sw_load stat
  [ "$sw_n" -gt 0 ] || return 0
  eval "set -- $sw_words"
  find "$@" -maxdepth 0 -printf '%p\t%y\t%u\t%g\t%m\t%s\t%l\0' 2>/dev/null |
    tr '\n\0' '\001\n' >"$sw_tmp/stat.out"
}

sw_users() {
  sw_load users
  [ "$sw_n" -gt 0 ] || return 0
  eval "set -- $sw_words"
  getent passwd "$@" >"$sw_tmp/users.out" 2>/dev/null
}

sw_env() {
  sw_load env
  [ "$sw_n" -gt 0 ] || return 0
  eval "set -- $sw_words"
  awk -v dir="$sw_tmp" "$sw_env_awk" "$@" >"$sw_tmp/envkeys.out" 2>/dev/null
}

sw_hash() {
  sw_load hash
  eval "set -- $sw_words"
  # Every value file of the .env splitter; no match leaves the pattern, which sha256sum skips.
  sha256sum -- "$@" "$sw_tmp"/v.* >"$sw_tmp/hash.out" 2>/dev/null
}

# One tar of every managed file: each file's size is taken as it is read, so a file that changes
# or goes away meanwhile (an editor, another apply) spoils its own content only, never the next.
# gzip takes out tar's padding: 50 sites' files travel in less than the bare text would.
sw_blob() {
  sw_load content
  [ "$sw_n" -gt 0 ] || return 0
  eval "set -- $sw_words"
  tar -cf - -P --no-recursion --hard-dereference -- "$@" 2>/dev/null | gzip -1 -c | base64 -w0 >"$sw_tmp/blob.out"
}

sw_disks() {
  set --
  for sw_d in /home /var/lib/mysql /var/lib/postgresql; do [ -e "$sw_d" ] && set -- "$@" "$sw_d"; done
  df -B1 --output=file,avail,size -- "$@" >"$sw_tmp/df.out" 2>/dev/null
}

# sw_in_list NAME: the lines of list NAME joined by commas (for SQL `IN`; values are checked
# names in single quotes).
sw_in_list() {
  sw_in=
  [ -f "$sw_tmp/$1" ] || return 0
  while IFS= read -r sw_l; do sw_in="${sw_in:+$sw_in,}$sw_l"; done <"$sw_tmp/$1"
}

# sw_job NAME COMMAND...: runs COMMAND with its stdout in NAME.out, stderr in NAME.err, status
# in NAME.rc; callers run it in the background.
sw_job() {
  sw_jn=$1
  shift
  "$@" >"$sw_tmp/$sw_jn.out" 2>"$sw_tmp/$sw_jn.err"
  echo $? >"$sw_tmp/$sw_jn.rc"
}

sw_mysql_sql() {
  sw_in_list my.dbs
  sw_dbs=$sw_in
  sw_in_list my.users
  sw_us=$sw_in
  [ -n "$sw_dbs$sw_us" ] || return 1
  {
    if [ -n "$sw_dbs" ]; then
      printf '%s\n' "SELECT 'db', s.SCHEMA_NAME, s.DEFAULT_CHARACTER_SET_NAME, s.DEFAULT_COLLATION_NAME,"
      printf '%s\n' " COALESCE(SUM(t.DATA_LENGTH + t.INDEX_LENGTH), 0)"
      printf '%s\n' " FROM information_schema.SCHEMATA s LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME"
      printf '%s\n' " WHERE s.SCHEMA_NAME IN ($sw_dbs)"
      printf '%s\n' " GROUP BY s.SCHEMA_NAME, s.DEFAULT_CHARACTER_SET_NAME, s.DEFAULT_COLLATION_NAME;"
      printf '%s\n' "SELECT 'grant', GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES"
      printf '%s\n' " WHERE REPLACE(REPLACE(TABLE_SCHEMA, '\\\\_', '_'), '\\\\%', '%') IN ($sw_dbs);"
    fi
    [ -z "$sw_us" ] || printf '%s\n' "SELECT 'user', User, authentication_string FROM mysql.user WHERE Host = 'localhost' AND User IN ($sw_us);"
  } >"$sw_tmp/mysql.sql"
}

sw_mysql() {
  sw_mysql_sql || return 0
  sw_client=
  for sw_c in mariadb mysql; do sw_installed "$sw_c" && { sw_client=$sw_c; break; }; done
  if [ -z "$sw_client" ]; then
    sw_problem - mysql "no mariadb or mysql client is installed"
    return 0
  fi
  if [ -n "${sw_mysql_cnf:-}" ]; then
    printf '%s\n' "$sw_mysql_cnf" >"$sw_tmp/my.cnf"
    set -- "--defaults-extra-file=$sw_tmp/my.cnf"
  else
    set -- "--user=$sw_mysql_user"
  fi
  (
    sw_job mysql "$sw_client" "$@" --batch --skip-column-names --connect-timeout=10 <"$sw_tmp/mysql.sql"
    rm -f "$sw_tmp/my.cnf"
  ) &
}

sw_pg_sql() {
  sw_in_list pg.dbs
  sw_dbs=$sw_in
  sw_in_list pg.users
  sw_us=$sw_in
  [ -n "$sw_dbs$sw_us" ] || return 1
  {
    [ -z "$sw_dbs" ] || printf '%s\n' "SELECT 'db', datname, pg_encoding_to_char(encoding), datcollate, pg_database_size(oid) FROM pg_database WHERE datname IN ($sw_dbs);"
    [ -z "$sw_us" ] || printf '%s\n' "SELECT 'user', rolname, COALESCE(rolpassword, '') FROM pg_authid WHERE rolname IN ($sw_us);"
    sw_in_list pg.pairs
    if [ -n "$sw_in" ]; then
      sw_pairs="(VALUES $sw_in) AS w(usr, db) JOIN pg_roles r ON r.rolname = w.usr JOIN pg_database d ON d.datname = w.db"
      printf '%s\n' "SELECT 'grant', r.rolname, d.datname, p.privilege FROM $sw_pairs"
      printf '%s\n' " CROSS JOIN (VALUES ('CONNECT'), ('CREATE'), ('TEMPORARY')) AS p(privilege)"
      printf '%s\n' " WHERE has_database_privilege(r.oid, d.oid, p.privilege)"
      printf '%s\n' " UNION ALL SELECT 'grant', r.rolname, d.datname, 'OWNER' FROM $sw_pairs AND d.datdba = r.oid;"
    fi
  } >"$sw_tmp/pg.sql"
}

sw_postgres() {
  sw_pg_sql || return 0
  if ! sw_installed psql; then
    sw_problem - postgresql "no psql client is installed"
    return 0
  fi
  set -- psql -X -A -t -q -v ON_ERROR_STOP=1 -F "$sw_tab" -d postgres
  if [ -n "${sw_pgpass:-}" ]; then
    printf '%s\n' "$sw_pgpass" >"$sw_tmp/pgpass"
    set -- env "PGPASSFILE=$sw_tmp/pgpass" PGCONNECT_TIMEOUT=10 "$@" -h 127.0.0.1 -U "$sw_pg_user"
  else
    set -- env PGCONNECT_TIMEOUT=10 runuser -u "$sw_pg_user" -- "$@"
  fi
  (
    sw_job pg "$@" <"$sw_tmp/pg.sql"
    rm -f "$sw_tmp/pgpass"
  ) &
}

# Process states from supervisord's XML-RPC socket: a few standard-library lines of Python
# answer in ~30 ms where `supervisorctl status` takes ~300 ms (its imports); supervisorctl is
# the fallback (other socket paths, authentication).
sw_supervisor_py='import re,socket,sys
p="/var/run/supervisor.sock"
try:
    m=re.search(r"^\[unix_http_server\][^\[]*?^file\s*=\s*([^\s;]+)",open("/etc/supervisor/supervisord.conf").read(),re.M)
    p=m.group(1) if m else p
except OSError:
    pass
b=b"<?xml version=\"1.0\"?><methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>"
s=socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(p)
s.sendall(b"POST /RPC2 HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n"%len(b)+b)
d=b""
while True:
    c=s.recv(65536)
    if not c:
        break
    d+=c
h,_,x=d.partition(b"\r\n\r\n")
if b" 200 " not in h.split(b"\r\n")[0] or b"<fault>" in x:
    sys.exit(3)
for st in re.findall(rb"<struct>(.*?)</struct>",x,re.S):
    f=dict(re.findall(rb"<name>(.*?)</name>\s*<value>\s*(?:<[a-z0-9]+>)?(.*?)(?:</[a-z0-9]+>)?\s*</value>",st,re.S))
    sys.stdout.buffer.write(b"\t".join([f.get(b"group",b""),f.get(b"name",b""),f.get(b"statename",b"")])+b"\n")'

sw_supervisor_states() {
  if sw_installed python3 && python3 -I -S -c "$sw_supervisor_py" 2>/dev/null; then return 0; fi
  supervisorctl status | awk '{ n = $1; g = n; i = index(n, ":"); if (i) { g = substr(n, 1, i - 1); n = substr(n, i + 1) } if ($2 ~ /^[A-Z]+$/) print g "\t" n "\t" $2 }'
}

sw_supervisor() {
  sw_runs supervisord || return 0
  sw_job procs sw_supervisor_states &
}

sw_redis() {
  [ "$sw_redis_installed" = 1 ] || return 0
  if sw_installed redis-cli; then
    case $sw_redis_host:$sw_redis_port in *[!A-Za-z0-9.:-]*) return 0 ;; esac
    sw_job redis redis-cli -h "$sw_redis_host" -p "$sw_redis_port" ping &
  fi
}

# sw_job_result NAME TOPIC: the final awk reads NAME.out when the job succeeded, else reports.
sw_job_result() {
  [ -f "$sw_tmp/$1.rc" ] || return 0
  read -r sw_rc <"$sw_tmp/$1.rc"
  if [ "$sw_rc" = 0 ]; then
    sw_final "kind=$1" "$sw_tmp/$1.out"
  else
    sw_problem - "$2" "exited with status $sw_rc"
    sw_final kind=problem "topic=$2" "$sw_tmp/$1.err"
  fi
}

sw_redis_result() {
  sw_running_redis=0
  [ -f "$sw_tmp/redis.rc" ] && read -r sw_rc <"$sw_tmp/redis.rc" && [ "$sw_rc" = 0 ] && sw_running_redis=1
  [ -f "$sw_tmp/redis.rc" ] || { sw_runs redis-server && sw_running_redis=1; }
  sw_rec service redis "$sw_redis_installed" "$sw_running_redis"
}

sw_procs_result() {
  [ -f "$sw_tmp/procs.rc" ] || return 0
  read -r sw_rc <"$sw_tmp/procs.rc"
  # `supervisorctl status` exits 3 when a process is not running: its lines still count.
  if [ -s "$sw_tmp/procs.out" ] || [ "$sw_rc" = 0 ]; then
    sw_proc_logs
    sw_final kind=procs "$sw_tmp/procs.out" kind=proclog "$sw_tmp/proclog.out"
  else
    sw_problem - supervisor "process states unavailable (status $sw_rc)"
    sw_final kind=problem topic=supervisor "$sw_tmp/procs.err"
  fi
}

# The last lines of the log of each of siteward's processes that is not running, for the plan's
# health report: supervisor writes each program's output to /var/log/supervisor/PROGRAM.log
# (the program files siteward writes say so).
sw_proc_logs() {
  : >"$sw_tmp/proclog.out"
  while IFS="$sw_tab" read -r sw_g sw_n sw_s; do
    case $sw_g in siteward-*) ;; *) continue ;; esac
    case $sw_g in *[!A-Za-z0-9_.-]*) continue ;; esac
    case $sw_s in FATAL | BACKOFF | EXITED) ;; *) continue ;; esac
    [ -f "/var/log/supervisor/$sw_g.log" ] || continue
    tail -n 5 "/var/log/supervisor/$sw_g.log" | cut -c1-300 | while IFS= read -r sw_l; do
      printf '%s\t%s\t%s\n' "$sw_g" "$sw_n" "$sw_l"
    done
  done <"$sw_tmp/procs.out" >>"$sw_tmp/proclog.out"
}

# --- main --------------------------------------------------------------------------------------

sw_main() {
  umask 077
  LC_ALL=C
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  export LC_ALL PATH
  cd / || exit 2
  sw_base=${TMPDIR:-/tmp}
  [ -d /dev/shm ] && [ -w /dev/shm ] && sw_base=/dev/shm
  sw_tmp=$(mktemp -d "$sw_base/siteward-probe.XXXXXX") || {
    echo "siteward probe: cannot create a temporary directory in $sw_base" >&2
    exit 2
  }
  trap 'rm -rf "$sw_tmp"' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  exec 3>"$sw_tmp/shell"
  sw_rec siteward-probe 1
  sw_requested=
  sw_requested_facts=
  sw_repos=
  sw_nrepo=0
  sw_server
  sw_request
  sw_recorded
  sw_programs
  sw_mysql
  sw_postgres
  sw_supervisor
  sw_redis
  sw_ls_remotes
  sw_users
  sw_stat
  sw_env
  sw_hash
  sw_blob
  sw_disks
  wait
  sw_job_result mysql mysql
  sw_job_result pg postgresql
  sw_procs_result
  sw_health_results
  sw_redis_result
  sw_refs_results
  exec 3>&-
  sw_emit
}

sw_emit() {
  sw_final kind=envkeys "$sw_tmp/envkeys.out" kind=users "$sw_tmp/users.out" \
    kind=stat "$sw_tmp/stat.out" kind=hash "$sw_tmp/hash.out" kind=df "$sw_tmp/df.out" \
    kind=blob "$sw_tmp/blob.out"
  for sw_f in envkeys users stat hash df blob; do : >>"$sw_tmp/$sw_f.out"; done
  sw_load final
  # A file listed earlier may be gone by now (a deploy or prune running beside the probe): missing
  # file operands are dropped, and one that vanishes between that check and awk opening it
  # (awk stops on it) makes the whole pass run again, its output kept apart until it succeeds.
  for sw_try in 1 2 3; do
    sw_emit_pass >"$sw_tmp/emit.out" 2>"$sw_tmp/emit.err" && break
  done || { cat "$sw_tmp/emit.err" >&2; return 1; }
  cat "$sw_tmp/emit.out"
}

sw_emit_pass() {
  eval "set -- $sw_words"
  for sw_a in "$@"; do
    shift
    case $sw_a in
    *=*) set -- "$@" "$sw_a" ;;
    *) [ ! -e "$sw_a" ] || set -- "$@" "$sw_a" ;;
    esac
  done
  awk -F "$sw_tab" -v tmp="$sw_tmp" "$sw_awk_lib$sw_emit_awk" kind=shell "$sw_tmp/shell" "$@"
}

# --- awk programs ------------------------------------------------------------------------------

sw_awk_lib='
BEGIN {
  for (i = 1; i < 256; i++) b64_ord[sprintf("%c", i)] = i
  b64_set = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
}
function b64(s,   n, i, a, b, c, o) {
  n = length(s); o = ""
  for (i = 1; i <= n; i += 3) {
    a = b64_ord[substr(s, i, 1)]; b = b64_ord[substr(s, i + 1, 1)]; c = b64_ord[substr(s, i + 2, 1)]
    o = o substr(b64_set, int(a / 4) + 1, 1) substr(b64_set, (a % 4) * 16 + int(b / 16) + 1, 1)
    o = o (i + 1 <= n ? substr(b64_set, (b % 16) * 4 + int(c / 64) + 1, 1) : "=")
    o = o (i + 2 <= n ? substr(b64_set, c % 64 + 1, 1) : "=")
  }
  return o
}
'

# .env files (`site=NAME FILE` pairs) to one file per value and `N<TAB>site<TAB>key` lines, so
# that one sha256sum hashes every value. Values are read as Laravel (phpdotenv) reads them:
# `export ` and spaces around are ignored; "double quotes" may span lines and resolve \" \\ \$
# \n \r \t \f \v; 'single quotes' are literal; unquoted values end at whitespace or `#`.
# `${VAR}` is not expanded.
sw_env_awk='
function value_end(s, from,   i, c) {
  for (i = from; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c == "\\") i++
    else if (c == "\"") return i
  }
  return 0
}
function unescape(s,   o, i, c, d) {
  o = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c != "\\" || i == length(s)) { o = o c; continue }
    d = substr(s, ++i, 1)
    if (d == "n") o = o "\n"; else if (d == "r") o = o "\r"; else if (d == "t") o = o "\t"
    else if (d == "f") o = o "\f"; else if (d == "v") o = o "\v"
    else if (d == "\"" || d == "\\" || d == "$") o = o d
    else o = o "\\" d
  }
  return o
}
function emit(key, value,   f) {
  n++
  f = dir "/v." n
  printf "%s", value > f
  close(f)
  print n "\t" site "\t" key
}
function unquoted(v,   i, c) {
  for (i = 1; i <= length(v); i++) {
    c = substr(v, i, 1)
    if (c == "#" || c == " " || c == "\t") return substr(v, 1, i - 1)
  }
  return v
}
FNR == 1 { open = "" }
open != "" {
  e = value_end($0, 1)
  if (e == 0) { buffer = buffer "\n" $0; next }
  emit(open, unescape(buffer "\n" substr($0, 1, e - 1)))
  open = ""
  next
}
{
  line = $0
  sub(/\r$/, "", line)
  sub(/^[ \t]+/, "", line)
  if (line == "" || substr(line, 1, 1) == "#") next
  if (substr(line, 1, 7) == "export ") { line = substr(line, 8); sub(/^[ \t]+/, "", line) }
  eq = index(line, "=")
  if (eq == 0) next
  key = substr(line, 1, eq - 1)
  sub(/[ \t]+$/, "", key)
  if (key !~ /^[A-Za-z_][A-Za-z0-9_.]*$/) next
  v = substr(line, eq + 1)
  sub(/^[ \t]+/, "", v)
  q = substr(v, 1, 1)
  if (q == "\"") {
    e = value_end(v, 2)
    if (e == 0) { open = key; buffer = substr(v, 2); next }
    emit(key, unescape(substr(v, 2, e - 2)))
  } else if (q == "\047") {
    e = index(substr(v, 2), "\047")
    emit(key, e ? substr(v, 2, e - 1) : substr(v, 2))
  } else {
    emit(key, unquoted(v))
  }
}
'

# The final pass: every raw input to records, text fields in base64, then `end <count>`.
# Inputs are told apart by `kind=` operands set before each file.
sw_emit_awk='
function out(line) { print line; records++ }
function t(s) { return b64(s) }
function opt(s) { return s == "" ? "-" : b64(s) }
function first_line_hex(   s) { s = $0; sub(/[ \t\r]+$/, "", s); return (s ~ /^[0-9a-f]+$/ && length(s) >= 7 && length(s) <= 64) ? s : "" }
BEGIN { soh = sprintf("%c", 1) }
kind == "shell" {
  line = $1
  for (i = 2; i <= NF; i++) {
    f = $i; c = substr(f, 1, 1)
    if (c == "~") f = b64(substr(f, 2)); else if (c == "^") f = substr(f, 2)
    line = line "\t" f
  }
  out(line); next
}
kind == "stat" {
  target = ""
  for (i = 7; i <= NF; i++) target = target (i > 7 ? "\t" : "") $i
  gsub(soh, "\n", target)
  k = $2; if (k != "f" && k != "d" && k != "l") k = "o"
  out("stat\t" t($1) "\t" k "\t" t($3) "\t" t($4) "\t" $5 "\t" $6 "\t" (k == "l" ? t(target) : "-"))
  next
}
kind == "envkeys" { env_site[$1] = $2; env_key[$1] = $3; next }
kind == "hash" {
  sha = substr($0, 1, 64); path = substr($0, 67)
  if (index(path, tmp "/v.") == 1) {
    id = substr(path, length(tmp) + 4)
    if (id in env_site) out("env\t" t(env_site[id]) "\t" t(env_key[id]) "\t" sha)
  } else out("hash\t" t(path) "\t" sha)
  next
}
kind == "users" {
  split($0, pw, ":")
  out("user\t" t(pw[1]) "\t" pw[3] "\t" pw[4] "\t" t(pw[6]) "\t" t(pw[7])); next
}
kind == "df" { if (FNR > 1) { split($0, d, " "); out("disk\t" t(d[1]) "\t" d[2] "\t" d[3]) }; next }
kind == "blob" { out("blob\t" $0); next }
kind == "mysql" || kind == "pg" {
  line = (kind == "mysql" ? "mysql-" : "pg-") $1
  for (i = 2; i <= NF; i++) line = line "\t" t($i)
  out(line); next
}
kind == "refs" { if ($1 ~ /^[0-9a-f]+$/ && length($1) == 40) out("ref\t" source "\t" t($2) "\t" $1); next }
kind == "procs" { out("process\t" t($1) "\t" t($2) "\t" t($3)); next }
kind == "proclog" { out("proclog\t" t($1) "\t" t($2) "\t" t(substr($0, length($1) + length($2) + 3))); next }
kind == "facts" || kind == "lock" || kind == "backup-status" {
  eq = index($0, "="); if (eq == 0) next
  tag = (kind == "facts" ? "fact" : kind == "lock" ? "lock" : "backup")
  out(tag "\t" t(site) "\t" t(substr($0, 1, eq - 1)) "\t" t(substr($0, eq + 1))); next
}
kind == "cert" { out("cert\t" t(site) "\t" t(source) "\t" t($0)); next }
kind == "journal" { out("journal\t" t(site) "\t" t($0)); next }
kind == "crontab" {
  if (!(user in cron)) cron[user] = 0
  if ($0 !~ /^[ \t]*(#|$)/) cron[user]++
  next
}
kind == "revision" { if (FNR == 1 && (h = first_line_hex()) != "") out("revision\t" t(site) "\t" t(release) "\t" h); next }
kind == "bad" { if (FNR == 1 && (h = first_line_hex()) != "") out("bad\t" t(site) "\t" t(release) "\t" h); next }
kind == "live" { if (FNR == 1 && (h = first_line_hex()) != "") out("git\t" t(site) "\t" h "\t-\t-"); next }
kind == "git" {
  if ($0 == "--") { after[site] = 1; next }
  if (after[site]) { remote[site] = $0; next }
  if (FNR == 1) commit[site] = first_line_hex(); else if (FNR == 2) branch[site] = ($0 == "HEAD" ? "" : $0)
  next
}
kind == "problem" { if ($0 != "" && shown[topic]++ < 5) out("problem\t-\t" t(topic) "\t" t($0)); next }
END {
  for (name in cron) out("crontab\t" t(name) "\t" cron[name])
  for (s in commit) if (commit[s] != "") out("git\t" t(s) "\t" commit[s] "\t" opt(remote[s]) "\t" opt(branch[s]))
  print "end\t" records
}
'

sw_main </dev/null
