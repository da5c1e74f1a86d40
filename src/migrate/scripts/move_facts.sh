# What a server offers a site that moves there, and what the site's code asks for: the
# database servers' versions and MariaDB/MySQL's max_allowed_packet as configured, the modules
# of the site's PHP, and the `ext-*` packages its composer.json and composer.lock require (the
# code's own JSON, read by PHP; no application code runs). Read only; no database login.
# $1 PHP version (or -), $2 the site's live code directory (or -)
set -u
php_version=$1 code=$2

server=
for candidate in mariadbd mysqld; do
  command -v "$candidate" >/dev/null 2>&1 && { server=$candidate; break; }
done
if [ -n "$server" ]; then
  # "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for …" / "mysqld  Ver 8.0.36 for Linux …"
  "$server" --version 2>/dev/null | awk '{
    for (i = 1; i <= NF; i++) if ($i == "Ver") { v = $(i + 1); break }
    flavor = (v ~ /MariaDB/ || $0 ~ /MariaDB/) ? "MariaDB" : "MySQL"
    sub(/-.*/, "", v); print "mysql=" flavor " " v
  }'
  "$server" --verbose --help 2>/dev/null | awk '$1 == "max-allowed-packet" || $1 == "max_allowed_packet" { print "max_allowed_packet=" $2; exit }'
fi
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | awk '$4 == "online" { print "postgres=" $1; exit }'
fi

php=
[ "$php_version" = - ] || php=$(command -v "php$php_version" 2>/dev/null || true)
if [ -n "$php" ]; then
  printf 'php_modules=%s\n' "$("$php" -m 2>/dev/null | grep -v '^\[' | tr 'A-Z' 'a-z' | tr ' ' '_' | sort -u | tr '\n' ' ')"
  if [ "$code" != - ] && [ -d "$code" ]; then
    # shellcheck disable=SC2016 # PHP code, not shell
    "$php" -n -r '
      $need = [];
      $add = function ($require) use (&$need) {
        foreach (array_keys((array) $require) as $name) {
          if (preg_match("/^ext-([a-z0-9_-]+)$/i", $name, $m)) { $need[strtr(strtolower($m[1]), "-", "_")] = true; }
        }
      };
      $dir = $argv[1];
      $json = @json_decode((string) @file_get_contents("$dir/composer.json"), true);
      if (is_array($json)) { $add($json["require"] ?? []); }
      $lock = @json_decode((string) @file_get_contents("$dir/composer.lock"), true);
      foreach (($lock["packages"] ?? []) as $package) { $add($package["require"] ?? []); }
      echo "requires=", implode(" ", array_keys($need)), "\n";
    ' "$code"
  fi
fi
exit 0
