# Unpacks a compressed tar stream from stdin into a fresh staging directory under the site root.
# $1: the staging directory; $2: the codec (`zstd` or `gzip`); $3: the owner (user; its login group).
# A stale staging directory of a cut-off run is dropped first, so a run always starts clean. The
# decompressor's own integrity check (zstd checksums, gzip CRC and length) catches a cut stream.
set -eu
stage=$1
codec=$2
owner=$3
rm -rf -- "$stage"
mkdir -p -- "$stage"
broken=$(mktemp)
trap 'rm -f -- "$broken"' EXIT
{
  case $codec in
    zstd) zstd -q -d -c || echo zstd >"$broken" ;;
    gzip) gzip -d -c || echo gzip >"$broken" ;;
    *) echo "unknown codec $codec" >&2; echo codec >"$broken" ;;
  esac
} | tar -x -p --no-same-owner -C "$stage" -f -
if [ -s "$broken" ]; then
  echo "the $codec stream was cut off or corrupt" >&2
  exit 3
fi
chown -R -h -- "$owner:" "$stage"
