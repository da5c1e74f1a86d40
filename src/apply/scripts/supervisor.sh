# `supervisorctl update` of named programs; shared by supervisor_update.sh, remove_sites.sh
# and the handover scripts of migrations.
#
# supervisor_update DIR PROGRAMS...: makes supervisor add, change or remove exactly these
# programs (their files are DIR/PROGRAM.conf); removed ones are stopped gracefully
# (stopwaitsecs) before this returns. Programs go by name: a bare `update` would also apply
# what other sites' steps are halfway through on this server. Another update (another site's
# removal, an administrator) may have removed a program whose file is gone already:
# supervisor answers "no such group" for it, and that program is as wanted. Any other answer
# fails, with what supervisor said on stderr (it says it on stdout).
supervisor_update() {
  dir=$1
  shift
  [ "$#" -gt 0 ] || return 0
  said=$(supervisorctl update "$@" 2>&1) && return 0
  if [ -n "$said" ] && printf '%s\n' "$said" | awk -v dir="$dir" '
    /^ERROR: no such group: / {
      file = dir "/" $5 ".conf"
      if ((getline line < file) < 0) next
      close(file)
    }
    /ERROR|[Ee]rror|refused|no such file|not running/ { bad = 1 }
    END { exit bad }'; then
    return 0
  fi
  printf 'supervisorctl update failed: %s\n' "$said" >&2
  return 1
}

# supervisor_stop_groups PROGRAMS...: stops these programs' processes side by side, each
# gracefully (supervisor sends the stop signal and waits the program's stopwaitsecs before it
# kills), and returns once none runs. `supervisorctl stop A B` would stop them one after the
# other. Uses supervisorctl's own client (its configuration, its socket); without it, falls
# back to supervisorctl.
supervisor_stop_groups() {
  [ "$#" -gt 0 ] || return 0
  python3 - "$@" <<'PY' 2>/dev/null && return 0
import sys, time
from supervisor.options import ClientOptions

options = ClientOptions()
options.realize(args=[])
rpc = options.getServerProxy().supervisor
groups = set(sys.argv[1:])
for group in groups:
    try:
        rpc.stopProcessGroup(group, False)
    except Exception:
        pass  # not known to supervisor, or not running
live = ("STARTING", "RUNNING", "BACKOFF", "STOPPING")
while any(p["group"] in groups and p["statename"] in live for p in rpc.getAllProcessInfo()):
    time.sleep(0.2)
PY
  for program in "$@"; do supervisorctl stop "$program:*" >/dev/null 2>&1 || true; done
}
