# Makes supervisor pick up changed program files: only the named programs are added,
# updated or removed, then started. Other programs keep running. Their files' markers
# (reload.sh) go once supervisor has them.
# $@ program names
set -eu
supervisorctl reread >/dev/null
supervisorctl update "$@" >/dev/null
for program in "$@"; do
  unmark_unloaded "/etc/supervisor/conf.d/$program.conf"
  if [ -e "/etc/supervisor/conf.d/$program.conf" ]; then
    supervisorctl start "$program:*" >/dev/null 2>&1 || true
  fi
done
