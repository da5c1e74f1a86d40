# Obtains (or renews) a site's certificate from an ACME CA with certbot in webroot mode: the key
# is made on this server and never leaves it. certbot keeps the lineage (`--cert-name SITE`),
# renews it (its timer, or siteward's cron file) and runs the deploy hook after each issue.
# nginx already serves /.well-known/acme-challenge/ from WEBROOT for every name.
# $1 site, $2 email, $3 ACME directory URL, $4 webroot, $5 names (comma-separated), $6 deploy hook
set -eu
site=$1 email=$2 directory=$3 webroot=$4 names=$5 hook=$6
if ! command -v certbot >/dev/null 2>&1; then
  echo "certbot is not installed on this server: install it (Debian/Ubuntu: apt-get install certbot)" >&2
  exit 3
fi
mkdir -p "$webroot/.well-known/acme-challenge"
chmod 755 "$webroot" "$webroot/.well-known" "$webroot/.well-known/acme-challenge"
# certbot runs one at a time (its timer or another site's issue may hold its lock): wait for it.
tries=0
while :; do
  if out=$(certbot certonly --non-interactive --agree-tos --no-eff-email --email "$email" \
    --server "$directory" --webroot --webroot-path "$webroot" --cert-name "$site" \
    --force-renewal --deploy-hook "$hook" --domains "$names" 2>&1); then
    exit 0
  fi
  case $out in *"Another instance of Certbot is already running"*) ;; *) break ;; esac
  tries=$((tries + 1))
  [ "$tries" -lt 120 ] || break
  sleep 1
done
printf '%s\n' "$out" | grep -v '^Saving debug log' >&2
echo "certbot could not obtain a certificate for $names from $directory" >&2
exit 3
