# Packs certbot's lineage of a site (live, archive, its renewal settings) and the ACME account
# that renews it, as a gzipped tar on stdout: a migration carries the certificate, since the new
# server cannot pass a challenge before the cutover. The key travels on the stream only.
# $1 site (the lineage's `--cert-name`)
set -eu
cd /etc/letsencrypt
conf=renewal/$1.conf
[ -f "$conf" ] || { echo "no certbot lineage of $1 on this server ($conf)" >&2; exit 3; }
account=$(sed -n 's/^account *= *//p' "$conf")
case $account in '' | *[!A-Za-z0-9_-]*) echo "the lineage names no usable account: $conf" >&2; exit 3 ;; esac
set -- "live/$1" "archive/$1" "$conf"
for dir in $(find accounts -mindepth 2 -maxdepth 5 -type d -name "$account"); do set -- "$@" "$dir"; done
tar -czf - -- "$@"
