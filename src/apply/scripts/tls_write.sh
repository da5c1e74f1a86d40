# Writes a certificate chain and its key from stdin (two lines: each file's content in base64)
# into DIR atomically: fullchain.pem 0644, privkey.pem 0600, both root's; then `nginx -t` and a
# reload (reload.sh). A failing test puts both previous files back and fails the step.
# The key never is a process argument: the shell's builtins hand it to `base64 -d` on stdin.
# $1 directory
set -eu
dir=$1
umask 077
mkdir -p "$dir"
chown root:root "$dir"
chmod 755 "$dir"
path=$dir/fullchain.pem
key=$dir/privkey.pem
IFS= read -r chain_b64
IFS= read -r key_b64
new_chain=$(mktemp "$dir/.siteward-new.XXXXXX")
new_key=$(mktemp "$dir/.siteward-new.XXXXXX")
old_chain= old_key=
cleanup() { rm -f "$new_chain" "$new_key" ${old_chain:+"$old_chain"} ${old_key:+"$old_key"}; }
trap cleanup EXIT
printf '%s' "$chain_b64" | base64 -d >"$new_chain"
printf '%s' "$key_b64" | base64 -d >"$new_key"
chown root:root "$new_chain" "$new_key"
chmod 644 "$new_chain"
chmod 600 "$new_key"
sync "$new_chain" "$new_key" 2>/dev/null || sync
if [ -e "$path" ]; then old_chain=$(mktemp "$dir/.siteward-old.XXXXXX") && cp -p "$path" "$old_chain"; fi
if [ -e "$key" ]; then old_key=$(mktemp "$dir/.siteward-old.XXXXXX") && cp -p "$key" "$old_key"; fi
mark_unloaded "$path"
mv -f "$new_key" "$key"
mv -f "$new_chain" "$path"
changed=$(date +%s%N)
failed_test_note=", previous certificate restored"
on_failed_test() {
  if [ -n "$old_chain" ]; then mv -f "$old_chain" "$path"; old_chain=; else rm -f "$path"; fi
  if [ -n "$old_key" ]; then mv -f "$old_key" "$key"; old_key=; else rm -f "$key"; fi
}
load nginx
