# Prints the best wire compression this server has: zstd, else gzip.
if command -v zstd >/dev/null 2>&1; then echo zstd; else echo gzip; fi
