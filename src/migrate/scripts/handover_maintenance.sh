# Puts a Laravel site into maintenance (`php artisan down`) or out of it (`up`), as the site
# user in its code directory, with the PHP binary siteward links for the site (deploy.sh).
# $1 code directory (`current` of a releases site, the root of an in-place one), $2 user,
# $3 down|up
set -eu
dir=$1 user=$2 mode=$3
case $mode in down|up) ;; *) echo "unknown maintenance mode $mode" >&2; exit 2 ;; esac
[ -f "$dir/artisan" ] || { echo "$dir/artisan does not exist" >&2; exit 3; }
home=$(getent passwd "$user" | cut -d: -f6)
# The site root's `.siteward-bin` (beside `current`, or in an in-place root), lexically.
bin="${dir%/*}/.siteward-bin:$dir/.siteward-bin"
cd "$dir"
runuser -u "$user" -- env -i HOME="$home" USER="$user" LANG=C.UTF-8 \
  PATH="$bin:/usr/local/bin:/usr/bin:/bin" php artisan "$mode" --no-interaction
