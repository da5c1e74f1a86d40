# Checks the storage paths under a site root before they are sent.
# $1: the site root; $2: the codec wanted ("zstd" answers whether it is installed); then the paths.
# Prints NUL-terminated records: `Mpath` for a path that does not exist, `Opath` for a symlink
# whose target resolves outside the site root, then `Czstd` or `Cgzip`.
set -eu
root=$(realpath -e -- "$1")
shift 2
cd -- "$root"
for path; do
  if [ ! -e "./$path" ] && [ ! -L "./$path" ]; then
    printf 'M%s\0' "$path"
    continue
  fi
  find "./$path" -type l -exec sh -c '
    root=$1; shift
    for link; do
      resolved=$(realpath -m -- "$link")
      case $resolved in
        "$root" | "$root"/*) ;;
        *) printf "O%s\0" "$link" ;;
      esac
    done' siteward "$root" {} +
done
if command -v zstd >/dev/null 2>&1; then printf 'Czstd\0'; else printf 'Cgzip\0'; fi
