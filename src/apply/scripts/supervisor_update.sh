# Makes supervisor pick up changed program files: only the named programs are added,
# updated or removed, then started. Other programs keep running.
# $@ program names
set -eu
supervisorctl reread >/dev/null
supervisorctl update "$@" >/dev/null
for program in "$@"; do
  if [ -e "/etc/supervisor/conf.d/$program.conf" ]; then
    supervisorctl start "$program:*" >/dev/null 2>&1 || true
  fi
done
