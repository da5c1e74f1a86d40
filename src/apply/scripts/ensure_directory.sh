# Creates directories (parents too) and sets their owner and mode; refuses symlinks.
# $1 owner, $2 group, then pairs of path and mode (octal), parents before children.
set -eu
owner=$1 group=$2
shift 2
while [ "$#" -ge 2 ]; do
  path=$1 mode=$2
  shift 2
  if [ -L "$path" ]; then echo "refusing: $path is a symlink" >&2; exit 3; fi
  if [ -e "$path" ] && [ ! -d "$path" ]; then echo "refusing: $path exists and is not a directory" >&2; exit 3; fi
  mkdir -p "$path"
  chown "$owner:$group" "$path"
  chmod "$mode" "$path"
done
