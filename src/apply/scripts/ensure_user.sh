# Creates a site user with its own group and home; lets the web server read through the home.
# $1 user, $2 home, $3 `nojoin` when the caller adds www-data to the group itself
set -eu
user=$1 home=$2 join=${3:-join}
if ! id -u "$user" >/dev/null 2>&1; then
  if getent group "$user" >/dev/null 2>&1; then
    useradd --create-home --home-dir "$home" --shell /bin/bash --gid "$user" "$user"
  else
    useradd --create-home --home-dir "$home" --shell /bin/bash --user-group "$user"
  fi
fi
current_home=$(getent passwd "$user" | cut -d: -f6)
if [ "$current_home" != "$home" ]; then
  usermod --home "$home" --move-home "$user"
fi
[ -L "$home" ] && { echo "refusing: $home is a symlink" >&2; exit 3; }
chown "$user:$user" "$home"
chmod 0750 "$home"
if [ "$join" = join ] && id -u www-data >/dev/null 2>&1 && ! id -nG www-data | tr ' ' '\n' | grep -qx "$user"; then
  usermod -a -G "$user" www-data
fi
