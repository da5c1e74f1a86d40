# Creates site users in one round trip: ensure_user (ensure_user.sh) for each pair of arguments.
# Prints `failed USER` and the error as `| ` lines for each user that could not be made, and
# exits 1 then; the other users are made all the same.
# $@ pairs of user and home
set -u
err=$(mktemp /tmp/.siteward-users.XXXXXX)
trap 'rm -f "$err"' EXIT
status=0
while [ "$#" -ge 2 ]; do
  if ! ensure_user "$1" "$2" 2>"$err"; then
    printf 'failed %s\n' "$1"
    sed 's/^/| /' "$err"
    status=1
  fi
  shift 2
done
exit "$status"
