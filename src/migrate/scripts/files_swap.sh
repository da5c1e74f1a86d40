# Moves each verified staged path over the live one, then drops the staging directory.
# $1: the site root; $2: the staging directory; then the paths, relative to both.
# Per path: the live tree is renamed aside, the staged one renamed in, the old one removed; a
# run cut off in between leaves `.siteward-old-NAME` beside the path, removed by the next run.
set -eu
root=$1
stage=$2
shift 2
for path; do
  live="$root/$path"
  parent=$(dirname -- "$live")
  old="$parent/.siteward-old-$(basename -- "$live")"
  mkdir -p -- "$parent"
  rm -rf -- "$old"
  if [ -e "$live" ] || [ -L "$live" ]; then
    mv -T -- "$live" "$old"
  fi
  mv -T -- "$stage/$path" "$live"
  rm -rf -- "$old"
done
rm -rf -- "$stage"
