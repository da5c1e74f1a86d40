# Creates site users in one round trip. Users that do not exist yet (nor their home) are made by
# one `newusers` (their own group, made or reused, home 0750 with /etc/skel, shell bash, password
# locked with one `chpasswd -e`); the others go through ensure_user (ensure_user.sh), and so do
# new users when newusers fails. `www-data` joins all their groups in one usermod.
# Prints `failed USER` and the error as `| ` lines for each user that could not be made, and
# exits 1 then; the other users are made all the same.
# $@ pairs of user and home
set -u
err=$(mktemp /tmp/.siteward-users.XXXXXX)
trap 'rm -f "$err"' EXIT
web=$(id -nG www-data 2>/dev/null) || web=-
known=" $(getent passwd | cut -d: -f1 | tr '\n' ' ') "
status=0 join= fresh= lines=

made() { case " $web " in " - " | *" $1 "*) ;; *) join="$join${join:+,}$1" ;; esac; }
one() { # USER HOME through ensure_user
  if ensure_user "$1" "$2" nojoin 2>"$err"; then
    made "$1"
  else
    printf 'failed %s\n' "$1"
    sed 's/^/| /' "$err"
    status=1
  fi
}

# A throwaway password for the moment between newusers and chpasswd: nobody knows it.
throwaway=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
while [ "$#" -ge 2 ]; do
  case $known in
    *" $1 "*) one "$1" "$2" ;;
    *)
      if [ -e "$2" ] || [ -L "$2" ] || [ ! -d "${2%/*}" ]; then one "$1" "$2"; else
        fresh="$fresh $1:$2"
        lines="$lines$1:$throwaway::$1::$2:/bin/bash
"
      fi
      ;;
  esac
  shift 2
done

if [ -n "$fresh" ]; then
  if printf '%s' "$lines" | newusers 2>"$err"; then
    locks= homes=
    for pair in $fresh; do
      locks="$locks${pair%%:*}:!
"
      homes="$homes ${pair#*:}"
    done
    printf '%s' "$locks" | chpasswd -e
    for pair in $fresh; do
      user=${pair%%:*} home=${pair#*:}
      if [ -d "$home" ] && cp -a /etc/skel/. "$home/" 2>"$err" && chown -R "$user:$user" "$home" 2>>"$err"; then
        made "$user"
      else
        printf 'failed %s\n| the home %s was not made\n' "$user" "$home"
        sed 's/^/| /' "$err"
        status=1
      fi
    done
    # shellcheck disable=SC2086
    chmod 0750 $homes
  else
    for pair in $fresh; do one "${pair%%:*}" "${pair#*:}"; done
  fi
fi
[ -z "$join" ] || usermod -a -G "$join" www-data || status=1
exit "$status"
