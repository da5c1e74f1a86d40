# Prints the best wire compression this server has (zstd, else gzip), then its count of cores.
if command -v zstd >/dev/null 2>&1; then tool=zstd; else tool=gzip; fi
echo "$tool $(nproc 2>/dev/null || echo 1)"
