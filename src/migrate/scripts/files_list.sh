# Lists the storage paths under a directory for verification, NUL-safe.
# $1: the directory (a site root or a staging directory); then the paths, relative to it.
# First, per entry, `TYPE MODE SIZE ./path` NUL link-target NUL (find -printf); then a `=` record;
# then `blake2b-256  ./path` NUL per regular file (b2sum -z never escapes names; BLAKE2b costs
# less than half the CPU of coreutils' sha256sum).
set -eu
cd -- "$1"
shift
for path; do
  find "./$path" -printf '%y %m %s %p\0%l\0'
done
printf '=\0'
for path; do
  find "./$path" -type f -print0
done | xargs -0 -r b2sum -l 256 -z --
