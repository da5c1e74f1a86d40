# Unpacks a certbot lineage from lineage_pack.sh (stdin) into /etc/letsencrypt, root only: the
# server then serves the certificate and its certbot renews it.
set -eu
umask 077
mkdir -p /etc/letsencrypt
cd /etc/letsencrypt
tar -xzf - --no-same-owner
chmod 700 live archive
