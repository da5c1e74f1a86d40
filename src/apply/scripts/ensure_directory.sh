# Creates a directory (parents too) and sets its owner and mode; refuses symlinks.
# $1 path, $2 owner, $3 group, $4 mode (octal)
set -eu
path=$1 owner=$2 group=$3 mode=$4
if [ -L "$path" ]; then echo "refusing: $path is a symlink" >&2; exit 3; fi
if [ -e "$path" ] && [ ! -d "$path" ]; then echo "refusing: $path exists and is not a directory" >&2; exit 3; fi
mkdir -p "$path"
chown "$owner:$group" "$path"
chmod "$mode" "$path"
