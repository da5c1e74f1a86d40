# Lists the storage paths under a directory for verification, NUL-safe.
# $1: the directory (a site root or a staging directory); then the paths, relative to it.
# First, per entry, `TYPE MODE SIZE ./path` NUL link-target NUL (find -printf); then a `=` record;
# then `blake2b-256  ./path` NUL per regular file (b2sum -z never escapes names; BLAKE2b costs
# less than half the CPU of coreutils' sha256sum).
# The checksums are of the files the listing holds, so a file made on a live source after its
# listing is in neither part; one removed before its checksum keeps its entry without one.
set -eu
cd -- "$1"
shift
if [ $# -eq 0 ]; then
  printf '=\0'
  exit 0
fi
files=$(mktemp "${TMPDIR:-/tmp}/.siteward-files.XXXXXX")
trap 'rm -f "$files" "$files.err"' EXIT
for path; do
  set -- "$@" "./$path"
  shift
done
find "$@" -printf '%y %m %s %p\0%l\0' -type f -fprint0 "$files"
printf '=\0'
if ! xargs -0 -r b2sum -l 256 -z -- <"$files" 2>"$files.err"; then
  if grep -qv ': No such file or directory$' "$files.err"; then
    cat "$files.err" >&2
    exit 1
  fi
fi
