# Prints `FILES BYTES` of the regular files under storage paths; missing paths count 0.
# $1: the directory the paths are relative to; then the paths.
set -eu
cd -- "$1" 2>/dev/null || { echo "0 0"; exit 0; }
shift
for path; do
  if [ -e "./$path" ]; then find "./$path" -type f -printf '%s\n'; fi
done | awk '{ n++; s += $1 } END { printf "%d %d\n", n, s }'
