#!/usr/bin/env bash
# Build dist/pushq: one executable file that runs every `pushq` command on a Linux
# machine of the same architecture (glibc as new as the build machine's) with no Python.
#
#   deploy/build-binary.sh                  # -> dist/pushq
#   PYTHON=python3.11 BUILD_DIR=/tmp/b deploy/build-binary.sh
#   OUT=/tmp/pushq deploy/build-binary.sh    # write the binary elsewhere
#   PUSHQ_BINARY_KIND=onefile deploy/build-binary.sh   # PyInstaller --onefile instead
#   deploy/build-binary.sh --pack DIR BUILD OUT   # only pack DIR/pushq/pushq behind the stub
#
# The default is a PyInstaller one-dir build packed behind a short /bin/sh stub
# (deploy/binary-stub.sh) that unpacks it once into a cache dir and then execs it:
# PyInstaller's --onefile unpacks everything on every run, which costs each command
# ~1-2 s more (docs/deploy.md has the figures). The dashboard's static files and the
# SQL files are package data, collected into the build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
BUILD_DIR=${BUILD_DIR:-build/binary}
KIND=${PUSHQ_BINARY_KIND:-onedir}
OUT=${OUT:-dist/pushq}
PYINSTALLER_VERSION=6.22.3

# pack DIR BUILD OUT: DIR/pushq (a one-dir build) as a tar.gz behind the stub, as OUT;
# BUILD names the cache dir it unpacks to (a new one for every different payload).
pack() {
    local payload
    payload=$(mktemp)
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf - pushq |
        gzip -n -6 > "$payload"
    local build="$2-$(sha256sum "$payload" | cut -c1-12)"
    local lines=$(($(wc -l < deploy/binary-stub.sh) + 1))
    mkdir -p "$(dirname "$3")"
    sed -e "s/@BUILD@/$build/" -e "s/@LINES@/$lines/" deploy/binary-stub.sh > "$3.tmp"
    cat "$payload" >> "$3.tmp"
    rm -f "$payload"
    chmod 0755 "$3.tmp"
    mv "$3.tmp" "$3"
}

if [ "${1:-}" = --pack ]; then
    pack "$2" "$3" "$4"
    exit 0
fi

if [ ! -x "$BUILD_DIR/venv/bin/python" ]; then
    "$PYTHON" -m venv "$BUILD_DIR/venv"
fi
venv=$BUILD_DIR/venv/bin
"$venv/python" -m pip install --quiet "pyinstaller==$PYINSTALLER_VERSION" '.[server]'
"$venv/python" -m pip install --quiet --no-deps --force-reinstall .   # this checkout's pushq

# uvicorn picks its loop, protocol and lifespan modules by name at run time; the
# reloader (watchfiles), websockets and YAML log configs are never used by pushq serve.
"$venv/pyinstaller" --noconfirm --log-level WARN --name pushq --strip "--$KIND" \
    --distpath "$BUILD_DIR/dist" --workpath "$BUILD_DIR/work" --specpath "$BUILD_DIR" \
    --collect-data pushq --collect-submodules uvicorn --collect-data tzdata \
    --exclude-module watchfiles --exclude-module websockets --exclude-module yaml \
    --exclude-module tkinter \
    deploy/pushq_binary.py

if [ "$KIND" = onefile ]; then
    mkdir -p "$(dirname "$OUT")"
    install -m 0755 "$BUILD_DIR/dist/pushq" "$OUT"
else
    pack "$BUILD_DIR/dist" "$("$venv/python" -c 'import pushq; print(pushq.__version__)')" "$OUT"
fi
env -i "$(realpath "$OUT")" --version
ls -l "$OUT"
