# Validates a site on this server and prints one line per check:
# `check<TAB>NAME<TAB>ok|fail<TAB>MILLISECONDS<TAB>DETAIL`, then `end`.
# $1 domain, $2 the server's address, $3 code directory, $4 site user, $5 laravel (yes|no),
# $6 health path, $7 expected status (empty: any below 500), $8 expected body text,
# $9 health timeout in seconds, $10 engine (mysql|postgres|none), $11 database, $12 its user,
# $13 Redis URL without password (empty: no check), $14 jobs expected (running|paused),
# $15 live cron file (empty: the site has no cron jobs), $16 its paused place, $17 https (yes|no:
# the HTTP check goes over HTTPS with SNI, and the certificate served is checked), $18 the
# SHA-256 of the certificate the site must serve (empty: any), then triples of program, live
# program file, paused program file.
# stdin: the database password, then the Redis password (each one line, possibly empty); they
# reach the clients through 0600 files or the environment, never through arguments.
set -u
domain=$1 address=$2 dir=$3 user=$4 laravel=$5 health_path=$6 health_status=$7
health_body=$8 health_timeout=$9 engine=${10} database=${11} db_user=${12} redis_url=${13}
jobs=${14} cron_file=${15} cron_paused=${16} https=${17} expected_certificate=${18}
shift 18
db_password='' redis_password=''
IFS= read -r db_password || true
IFS= read -r redis_password || true
scratch=$(mktemp -d /tmp/.siteward-validate.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
chmod 0700 "$scratch"
cd /

now_ms() { date +%s%3N; }
# one_line TEXT: TEXT on one line (tabs and newlines as spaces), at most 300 characters.
one_line() { printf '%s' "$1" | tr '\t\n\r' '   ' | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-300; }
# report NAME STARTED STATUS DETAIL: prints a check's line; STATUS 0 is ok.
report() {
  if [ "$3" -eq 0 ]; then verdict=ok; else verdict=fail; fi
  printf 'check\t%s\t%s\t%s\t%s\n' "$1" "$verdict" "$(($(now_ms) - $2))" "$(one_line "$4")"
}

ip=$address
case $ip in
  *[!0-9.]*) case $ip in *:*) ;; *) ip=$(getent ahosts "$address" | awk '{ print $1; exit }') ;; esac ;;
esac
case $ip in *:*) ip="[$ip]" ;; esac
scheme=http port=80
[ "$https" != yes ] || scheme=https port=443

check_http() {
  started=$(now_ms)
  deadline=$(($(date +%s) + health_timeout))
  body_file=$scratch/body
  while :; do
    left=$((deadline - $(date +%s)))
    [ "$left" -ge 1 ] || left=1
    code=$(curl --noproxy '*' --silent --max-time "$left" --resolve "$domain:$port:$ip" --insecure \
      --output "$body_file" --write-out '%{http_code}' "$scheme://$domain$health_path" 2>/dev/null) ||
      code=${code:-000}
    why=
    if [ -n "$health_status" ]; then
      [ "$code" = "$health_status" ] || why="answered $code, expected $health_status"
    elif [ "$code" = 000 ] || [ "$code" -ge 500 ]; then
      why="answered $code, expected a status below 500"
    fi
    if [ -z "$why" ] && [ -n "$health_body" ] && ! grep -qF -- "$health_body" "$body_file"; then
      why="answered $code without the text \"$health_body\""
    fi
    if [ -z "$why" ] || [ "$(date +%s)" -ge "$deadline" ]; then break; fi
    sleep 0.5
  done
  [ "$code" != 000 ] || why="no answer within ${health_timeout}s"
  report http "$started" "$([ -z "$why" ]; echo $?)" \
    "GET $scheme://$domain$health_path at $address: ${why:-answered $code}"
}

# The certificate the server presents for the site's domain (SNI) on port 443: the site's own,
# and when it expires.
check_certificate() {
  [ "$https" = yes ] || return 0
  started=$(now_ms)
  out=$(openssl s_client -connect "$ip:443" -servername "$domain" </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 -enddate 2>/dev/null)
  served=$(printf '%s\n' "$out" | sed -n 's/^sha256 Fingerprint=//p' | tr -d : | tr 'A-F' 'a-f')
  until=$(printf '%s\n' "$out" | sed -n 's/^notAfter=//p')
  status=1
  if [ -z "$served" ]; then
    detail="no certificate is served for $domain at $address:443"
  elif [ -n "$expected_certificate" ] && [ "$served" != "$expected_certificate" ]; then
    detail="another certificate than the site's is served for $domain at $address:443 ($served)"
  else
    status=0
    detail="the site's certificate is served for $domain (SNI) at $address:443; it expires on $until"
  fi
  report certificate "$started" "$status" "$detail"
}

check_artisan() {
  [ "$laravel" = yes ] || return 0
  started=$(now_ms)
  home=$(getent passwd "$user" | cut -d: -f6)
  bin="${dir%/*}/.siteward-bin:$dir/.siteward-bin"
  output=$(cd "$dir" 2>&1 && runuser -u "$user" -- env -i HOME="$home" USER="$user" \
    LANG=C.UTF-8 PATH="$bin:/usr/local/bin:/usr/bin:/bin" php artisan about --no-interaction 2>&1)
  status=$?
  if [ "$status" -eq 0 ]; then detail="succeeded"; else
    detail="exited with status $status: $(printf '%s\n' "$output" | grep -v '^ *$' | tail -n 3)"
  fi
  report "artisan about" "$started" "$status" "$detail"
}

check_database() {
  [ "$engine" != none ] || return 0
  started=$(now_ms)
  secret=$scratch/secret
  : >"$secret" && chmod 0600 "$secret"
  case $engine in
    mysql)
      client=mariadb
      command -v mariadb >/dev/null 2>&1 || client=mysql
      printf '[client]\nuser="%s"\npassword="%s"\n' "$db_user" \
        "$(printf '%s' "$db_password" | sed 's/\\/\\\\/g; s/"/\\"/g')" >"$secret"
      output=$("$client" --defaults-extra-file="$secret" --connect-timeout=5 --batch \
        --skip-column-names --execute='SELECT 1' "$database" 2>&1) ;;
    postgres)
      printf '*:*:*:%s:%s\n' "$db_user" \
        "$(printf '%s' "$db_password" | sed 's/\\/\\\\/g; s/:/\\:/g')" >"$secret"
      output=$(PGPASSFILE=$secret PGCONNECT_TIMEOUT=5 psql -X -A -t -q -w -h 127.0.0.1 \
        -U "$db_user" -d "$database" -c 'SELECT 1' 2>&1) ;;
  esac
  status=$?
  [ "$status" -ne 0 ] || [ "$output" = 1 ] || status=1
  if [ "$status" -eq 0 ]; then detail="SELECT 1 on $database as $db_user"; else
    detail="SELECT 1 on $database as $db_user failed: $output"
  fi
  report database "$started" "$status" "$detail"
}

check_redis() {
  [ -n "$redis_url" ] || return 0
  started=$(now_ms)
  if [ -n "$redis_password" ]; then export REDISCLI_AUTH="$redis_password"; fi
  output=$(timeout 5 redis-cli --no-auth-warning -u "$redis_url" ping 2>&1)
  status=$?
  unset REDISCLI_AUTH
  [ "$status" -ne 0 ] || [ "$output" = PONG ] || status=1
  report redis "$started" "$status" "PING answered: ${output:-nothing}"
}

check_cron() {
  [ -n "$cron_file" ] || return 0
  started=$(now_ms)
  live=no held=no
  [ ! -f "$cron_file" ] || live=yes
  [ ! -f "$cron_paused" ] || held=yes
  case $jobs:$live:$held in
    running:yes:*) status=0 detail="$cron_file is live" ;;
    running:no:*) status=1 detail="$cron_file is missing (paused: $held)" ;;
    paused:no:yes) status=0 detail="paused in $cron_paused" ;;
    paused:yes:*) status=1 detail="$cron_file is live, expected paused" ;;
    *) status=1 detail="neither $cron_file nor $cron_paused exists" ;;
  esac
  report cron "$started" "$status" "$detail"
}

check_program() { # $1 program, $2 live file, $3 paused file; $4 supervisor's status output
  started=$(now_ms)
  states=$(printf '%s\n' "$4" | awk -v program="$1" '
    { group = $1; sub(/:.*/, "", group) } group == program && NF >= 2 { print $2 }' |
    tr '\n' ' ' | sed 's/ $//')
  if [ "$jobs" = running ]; then
    if [ -n "$states" ] && [ "$states" = "$(printf '%s' "$states" | sed 's/[^ ]*/RUNNING/g')" ]; then
      status=0 detail="RUNNING"
    elif [ -f "$2" ]; then status=1 detail="not running: ${states:-unknown to supervisor}"
    else status=1 detail="$2 is missing$([ ! -f "$3" ] || echo ", paused")"
    fi
  elif [ -n "$states" ]; then status=1 detail="supervisor runs it ($states), expected paused"
  elif [ -f "$2" ]; then status=1 detail="$2 is live, expected paused"
  elif [ -f "$3" ]; then status=0 detail="paused in $3, not running"
  else status=1 detail="$3 is missing"
  fi
  report "worker $1" "$started" "$status" "$detail"
}

unsettled() { # triples of program, live file, paused file: is one STARTING or in BACKOFF?
  while [ "$#" -ge 3 ]; do
    if printf '%s\n' "$status_output" | awk -v program="$1" '
      { group = $1; sub(/:.*/, "", group) }
      group == program && ($2 == "STARTING" || $2 == "BACKOFF") { found = 1 }
      END { exit !found }'; then
      return 0
    fi
    shift 3
  done
  return 1
}

check_workers() {
  [ "$#" -ge 3 ] || return 0
  status_output=$(supervisorctl status 2>&1 || true)
  # Programs just started (STARTING) or restarting (BACKOFF) get 15 s to settle.
  tries=30
  while [ "$jobs" = running ] && [ "$tries" -gt 0 ] && unsettled "$@"; do
    sleep 0.5
    tries=$((tries - 1))
    status_output=$(supervisorctl status 2>&1 || true)
  done
  while [ "$#" -ge 3 ]; do
    check_program "$1" "$2" "$3" "$status_output"
    shift 3
  done
}

check_http
check_certificate
check_artisan
check_database
check_redis
check_cron
check_workers "$@"
echo end
