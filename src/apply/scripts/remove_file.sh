# Removes a managed file, then reloads the service that read it.
# $1 path, $2 reload (nothing|nginx|php-fpm), $3 PHP version
set -eu
path=$1 reload=$2 php=${3:-}
[ -e "$path" ] || [ -L "$path" ] || exit 0
rm -f "$path"
systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }
case $reload in
  nothing) ;;
  nginx) nginx -t >/dev/null 2>&1 && { if systemd; then systemctl reload nginx; else nginx -s reload; fi; } ;;
  php-fpm)
    if systemd; then systemctl reload "php$php-fpm"
    elif [ -s "/run/php/php$php-fpm.pid" ]; then kill -USR2 "$(cat "/run/php/php$php-fpm.pid")"; fi
    ;;
esac
