# Loads rows sent by db_rows_send.sh with LOAD DATA LOCAL INFILE. After db_login.sh
# (MySQL/MariaDB): $1 compression, $2 database, $3 count of tables. Stdin, after the password
# line (if any): a line with the byte length of the SQL, that SQL (a LOAD DATA of file `1`,
# `2`, … per table, in order), then the compressed rows, each table ended by a line `e`.
# A splitter writes each table's lines into its own fifo, which its LOAD DATA reads.
compression=$1 database=$2 count=$3
client=mariadb
command -v mariadb >/dev/null 2>&1 || client=mysql
command -v perl >/dev/null 2>&1 || { echo "siteward: perl is missing (Debian: perl-base)" >&2; exit 1; }
IFS= read -r sql_bytes
work=$(mktemp -d /tmp/.siteward-load.XXXXXX)
trap 'rm -f $temporary; rm -rf "$work"' EXIT
head -c "$sql_bytes" >"$work/load.sql"
i=1
while [ "$i" -le "$count" ]; do mkfifo -m 600 "$work/$i"; i=$((i + 1)); done
split='
use strict;
my ($dir, $count) = @ARGV;
my ($buf, $table, $out) = ("", 0, undef);
sub next_table {
  if ($out) { close $out or die "closing table $table: $!\n" }
  $table++;
  undef $out;
  return if $table > $count;
  open $out, ">:raw", "$dir/$table" or die "opening $dir/$table: $!\n";
}
sub put {
  my ($data) = @_;
  my $off = 0;
  while ($off < length $data) {
    my $n = syswrite $out, $data, length($data) - $off, $off;
    die "writing table $table: $!\n" unless defined $n;
    $off += $n;
  }
}
next_table();
while (1) {
  my $got = sysread STDIN, $buf, 1 << 20, length $buf;
  die "reading: $!\n" unless defined $got;
  while ($table <= $count) {
    my $at = 0;
    if (substr($buf, 0, 2) ne "e\n") {
      my $end = index $buf, "\ne\n";
      last if $end < 0;
      $at = $end + 1;
    }
    put(substr($buf, 0, $at));
    substr($buf, 0, $at + 2, "");
    next_table();
  }
  if ($table > $count) {
    die "rows after the last table\n" if length $buf;
    last if $got == 0;
    next;
  }
  if ($got == 0) {
    put($buf) if length $buf;
    my $done = $table - 1;
    next_table() while $table <= $count;
    die "the rows ended after $done of $count tables\n";
  }
  my $last = rindex $buf, "\n";
  if ($last >= 0) { put(substr($buf, 0, $last + 1)); substr($buf, 0, $last + 1, ""); }
}
'
# (A job in the background reads /dev/null unless told otherwise: the rows come from fd 3.)
exec 3<&0
{ decompress "$compression" <&3 || echo $? >"$status_file"; } | perl -e "$split" "$work" "$count" &
exec 3<&-
splitter=$!
loaded=0
(cd "$work" && as_admin "$client" --local-infile=1 --batch --skip-column-names \
  --default-character-set=binary -- "$database" <load.sql) || loaded=$?
[ "$loaded" -eq 0 ] || kill "$splitter" 2>/dev/null || true
split_status=0
wait "$splitter" || split_status=$?
[ "$loaded" -eq 0 ] || exit "$loaded"
check_status "decompressing the rows of $database"
[ "$split_status" -eq 0 ] || { echo "siteward: splitting the rows of $database failed" >&2; exit 1; }
