# Prints the subject line of the commit a deploy would check out, fetching one commit of the
# followed ref into a throwaway bare repository (as the site user when it exists: its keys).
# $1 repository, $2 ref (branch or tag), $3 commit, $4 user
set -eu
repository=$1 ref=$2 commit=$3 user=$4
dir=$(mktemp -d /tmp/.siteward-subject.XXXXXX)
trap 'rm -rf "$dir"' EXIT
run() { "$@"; }
if id -u "$user" >/dev/null 2>&1; then
  chown "$user" "$dir"
  run() { runuser -u "$user" -- env HOME="$(getent passwd "$user" | cut -d: -f6)" "$@"; }
fi
export GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND="ssh -oBatchMode=yes -oConnectTimeout=10"
run git init -q --bare "$dir"
run timeout 20 git -C "$dir" fetch -q --depth 1 -- "$repository" "$ref"
[ "$(run git -C "$dir" rev-parse FETCH_HEAD)" = "$commit" ] || exit 0
run git -C "$dir" log -1 --format=%s FETCH_HEAD
