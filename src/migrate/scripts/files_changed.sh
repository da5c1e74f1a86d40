# Prints which of the paths read from stdin changed on this server since a time: modified since,
# or gone. A live source's files that changed while they were copied cannot be compared.
# $1: the directory the paths are relative to; $2: unix time. Paths in and out NUL-terminated.
set -eu
cd -- "$1"
xargs -0 -r sh -c '
  since=$1
  shift
  for path; do
    if [ ! -e "$path" ] && [ ! -L "$path" ]; then
      printf "%s\0" "$path"
    elif [ -n "$(find "$path" -maxdepth 0 -newermt "@$since" 2>/dev/null)" ]; then
      printf "%s\0" "$path"
    fi
  done' siteward "$2"
