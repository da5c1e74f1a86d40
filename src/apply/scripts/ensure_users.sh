# Creates site users in one round trip. A user that does not exist yet is made with three
# processes (id, useradd, chmod); one that exists goes through ensure_user (ensure_user.sh).
# `www-data` joins all their groups in one usermod at the end.
# Prints `failed USER` and the error as `| ` lines for each user that could not be made, and
# exits 1 then; the other users are made all the same.
# $@ pairs of user and home
set -u
err=$(mktemp /tmp/.siteward-users.XXXXXX)
trap 'rm -f "$err"' EXIT
web=$(id -nG www-data 2>/dev/null) || web=-
status=0 join=
create() { # USER HOME: a new user, its own group, its home 0750 (or ensure_user when it exists)
  if id -u "$1" >/dev/null 2>&1 || getent group "$1" >/dev/null 2>&1 || [ -e "$2" ]; then
    ensure_user "$1" "$2" nojoin
  else
    useradd --create-home --home-dir "$2" --shell /bin/bash --user-group "$1" && chmod 0750 "$2"
  fi
}
while [ "$#" -ge 2 ]; do
  if create "$1" "$2" 2>"$err"; then
    case " $web " in " - " | *" $1 "*) ;; *) join="$join${join:+,}$1" ;; esac
  else
    printf 'failed %s\n' "$1"
    sed 's/^/| /' "$err"
    status=1
  fi
  shift 2
done
[ -z "$join" ] || usermod -a -G "$join" www-data || status=1
exit "$status"
