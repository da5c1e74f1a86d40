# Streams the storage paths under a site root to stdout as one compressed GNU tar archive.
# $1: the site root; $2: the codec (`zstd` or `gzip`); then the paths, relative to the root.
# Modes are kept and symlinks stay symlinks; owners are set again on the receiving side.
set -eu
cd -- "$1"
codec=$2
shift 2
for path; do
  set -- "$@" "./$path"
  shift
done
case $codec in
  zstd) tar -c -f - -- "$@" | zstd -q -1 -T0 -c ;;
  gzip) tar -c -f - -- "$@" | gzip -1 -c ;;
  *) echo "unknown codec $codec" >&2; exit 2 ;;
esac
