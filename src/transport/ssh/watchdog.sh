# Runs "$1" (as `sh -c`) and ties it to the SSH connection that started it. sshd does not stop a
# command when the connection goes away (siteward killed, its machine gone): the command would
# run on, and race the next run's. A watcher outside the command checks each second that the
# connection's sshd process lives and, once it is gone, kills the command's process group
# (the server-side `timeout`'s). The command itself is exec'd, so its status and signal are its own.
c=$$ s=$PPID
while [ "$s" -gt 1 ] && read -r n <"/proc/$s/comm"; do
  case $n in sshd | sshd-session) break ;; esac
  p=1
  while read -r k v; do if [ "$k" = PPid: ]; then p=$v; break; fi; done <"/proc/$s/status"
  s=$p
done 2>/dev/null
if [ "$s" -gt 1 ]; then
  (
    while kill -0 "$c" && kill -0 "$s"; do sleep 1; done 2>/dev/null
    if kill -0 "$c" 2>/dev/null; then kill -KILL 0; fi
  ) </dev/null >/dev/null 2>&1 &
fi
exec sh -c "$1"
