# A site's Redis data on this server, for the final sync of a migration: where the site's
# `.env` says its Redis is, and the site's keys there (those under its prefixes, Laravel's
# REDIS_PREFIX and Horizon's, or the whole database when REDIS_PREFIX is empty) as DUMP payloads
# with their TTLs in milliseconds. Keys and values travel hex-encoded, one key a line
# ("HEXKEY PTTL HEXVALUE"), so that every byte survives. The password is read from the `.env`
# here and reaches redis-cli in its environment (REDISCLI_AUTH), never in an argument.
# $1 action: config | send | receive | clear; $2 the site's .env; receive: $3... the patterns to
# replace (clear removes the site's keys: a source that `onSource: remove` deletes)
set -eu
action=$1 env_file=$2
shift 2

# env_value KEY: the .env's last value of KEY, its quotes removed; status 1 when it has none.
env_value() {
  [ -r "$env_file" ] || return 1
  awk -v key="$1" '
    { sub(/\r$/, "") }
    $0 ~ "^[ \t]*(export[ \t]+)?" key "[ \t]*=" {
      value = $0; sub(/^[^=]*=[ \t]*/, "", value); found = 1
      if (value ~ /^".*"$/ || value ~ /^\047.*\047$/) value = substr(value, 2, length(value) - 2)
      else sub(/[ \t]+#.*$/, "", value)
    }
    END { if (!found) exit 1; print value }' "$env_file"
}

# slug TEXT: Laravel's Str::slug(TEXT, '_') for ASCII names.
slug() {
  printf '%s' "$1" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]\{1,\}/_/g; s/^_//; s/_$//'
}

host=$(env_value REDIS_HOST || echo 127.0.0.1)
port=$(env_value REDIS_PORT || echo 6379)
db=$(env_value REDIS_DB || echo 0)
user=$(env_value REDIS_USERNAME || true)
REDISCLI_AUTH=$(env_value REDIS_PASSWORD || true)
case $REDISCLI_AUTH in null | '') unset REDISCLI_AUTH ;; *) export REDISCLI_AUTH ;; esac
case $port in '' | *[!0-9]*) port=6379 ;; esac
case $db in '' | *[!0-9]*) db=0 ;; esac
app=$(slug "$(env_value APP_NAME || echo laravel)")

# The patterns of the site's keys: glob characters of a prefix matched literally.
glob_literal() { printf '%s' "$1" | sed 's/[][*?\\]/\\&/g'; }
if prefix=$(env_value REDIS_PREFIX); then :; else prefix=${app}_database_; fi
horizon=$(env_value HORIZON_PREFIX || echo "${app}_horizon:")
if [ -z "$prefix" ]; then
  patterns='*'
else
  patterns="$(glob_literal "$prefix")* $(glob_literal "$horizon")*"
fi

rcli() {
  if [ -n "$user" ]; then
    redis-cli -h "$host" -p "$port" -n "$db" --user "$user" "$@"
  else
    redis-cli -h "$host" -p "$port" -n "$db" "$@"
  fi
}

# quoted TEXT: TEXT as one double-quoted argument of a command redis-cli reads on stdin.
quoted() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"; }

# Lua run by Redis itself: one SCAN step over a pattern, and what to do with each key.
scan_lua="local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 500) local out = {r[1]}"
hex_lua="local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', string.byte(c)) end)) end"
dump_lua="$hex_lua $scan_lua for _, k in ipairs(r[2]) do local t = redis.call('PTTL', k) local d = redis.call('DUMP', k) if t ~= -2 and d then out[#out + 1] = hex(k) .. ' ' .. t .. ' ' .. hex(d) end end return out"
count_lua="$scan_lua out[2] = #r[2] return out"
unlink_lua="$scan_lua for _, k in ipairs(r[2]) do redis.call('UNLINK', k) end return out"
restore_lua="local function unhex(h) return (h:gsub('..', function(x) return string.char(tonumber(x, 16)) end)) end local t = tonumber(ARGV[2]) if t < 0 then t = 0 end redis.call('RESTORE', unhex(ARGV[1]), t, unhex(ARGV[3]), 'REPLACE') return 'restored'"

# each_step LUA PATTERN: runs LUA over every SCAN step of PATTERN, printing what each returns
# after its cursor.
each_step() {
  cursor=0
  while :; do
    printf 'EVAL %s 0 %s %s\n' "$(quoted "$1")" "$cursor" "$(quoted "$2")" | rcli >"$step_out" 2>&1
    cursor=$(head -n 1 "$step_out")
    case $cursor in
    '' | *[!0-9]*)
      echo "Redis at $host:$port (database $db) answered: $(head -n 3 "$step_out")" >&2
      : >"$failed"
      exit 3
      ;;
    esac
    tail -n +2 "$step_out"
    [ "$cursor" != 0 ] || return 0
  done
}

step_out=$(mktemp /tmp/.siteward-redis.XXXXXX)
failed=$step_out.failed
trap 'rm -f "$step_out" "$failed"' EXIT

# count PATTERN...: how many keys match the patterns.
count() {
  total=0
  for pattern in "$@"; do
    counts=$(each_step "$count_lua" "$pattern")
    for n in $counts; do total=$((total + n)); done
  done
  echo "$total"
}

answers() { command -v redis-cli >/dev/null 2>&1 && [ "$(rcli ping 2>/dev/null)" = PONG ]; }

case $action in
config)
  printf 'host=%s\nport=%s\ndb=%s\npatterns=%s\n' "$host" "$port" "$db" "$patterns"
  if ! command -v redis-cli >/dev/null 2>&1; then
    echo "state=no-client"
  elif ! answers; then
    echo "state=down"
  else
    echo "state=up"
    # shellcheck disable=SC2086 # patterns are words without blanks
    echo "keys=$(count $patterns)"
  fi
  ;;
send)
  answers || { echo "no Redis answers at $host:$port" >&2; exit 3; }
  # The pipe hides each_step's status: its failure leaves a mark.
  for pattern in $patterns; do each_step "$dump_lua" "$pattern"; done | awk '!seen[$1]++'
  [ ! -e "$failed" ] || exit 3
  ;;
receive)
  answers || { echo "no Redis answers at $host:$port" >&2; exit 3; }
  for pattern in "$@"; do each_step "$unlink_lua" "$pattern" >/dev/null; done
  awk -v lua="$(quoted "$restore_lua")" 'NF == 3 { print "EVAL " lua " 0 " $1 " " $2 " " $3 }' |
    rcli >"$step_out" 2>&1
  restored=$(grep -cx restored "$step_out" || true)
  if grep -vqx restored "$step_out"; then
    echo "Redis at $host:$port (database $db) refused a key: $(grep -vx restored "$step_out" | head -n 3)" >&2
    exit 3
  fi
  printf 'restored=%s\npresent=%s\n' "$restored" "$(count "$@")"
  ;;
clear)
  answers || { echo "cleared=0"; exit 0; }
  # shellcheck disable=SC2086 # patterns are words without blanks
  before=$(count $patterns)
  for pattern in $patterns; do each_step "$unlink_lua" "$pattern" >/dev/null; done
  echo "cleared=$before"
  ;;
*)
  echo "unknown action $action" >&2
  exit 2
  ;;
esac
