#!/bin/sh
# pushq, one file: a frozen pushq (PyInstaller one-dir: Python, pushq, its dependencies,
# the dashboard and the SQL) as a tar.gz behind this stub. The first run unpacks it into
# a cache dir; every run execs it from there. Made by deploy/build-binary.sh.
set -eu
build=@BUILD@
if [ -n "${PUSHQ_CACHE_DIR:-}" ]; then base=$PUSHQ_CACHE_DIR
elif [ -n "${CACHE_DIRECTORY:-}" ]; then base=${CACHE_DIRECTORY%%:*}  # systemd CacheDirectory=
elif [ -n "${XDG_CACHE_HOME:-}" ]; then base=$XDG_CACHE_HOME/pushq
elif [ -n "${HOME:-}" ] && [ "$HOME" != / ] && [ -w "$HOME" ]; then base=$HOME/.cache/pushq
else base=${TMPDIR:-/tmp}/pushq-$(id -u)
fi
dir=$base/$build
if [ ! -x "$dir/pushq/pushq" ]; then
    mkdir -p -m 0700 "$base"
    if [ ! -O "$base" ]; then
        echo "pushq: cache dir $base belongs to someone else: set PUSHQ_CACHE_DIR" >&2
        exit 2
    fi
    unpack=$(mktemp -d "$base/.unpack.XXXXXX")
    tail -n +@LINES@ "$0" | tar -xzf - -C "$unpack"
    mv "$unpack" "$dir" 2>/dev/null || rm -rf "$unpack"  # another first run won the race
fi
exec "$dir/pushq/pushq" "$@"
