#!/usr/bin/env bash
# Builds the benchmark's C tools from the librdkafka source bundled in the
# rdkafka-sys crate (no download): librdkafka.a, rdkafka_performance (the
# load generator), and bench/mock_broker.c and bench/create_topics.c linked
# against it. Idempotent: does nothing when the tools are already built.
#
#   bench/build_tools.sh BUILD_DIR
#
# Prints nothing on stdout but the path of the directory with the tools.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: build_tools.sh BUILD_DIR}"
mkdir -p "$build"
build="$(cd "$build" && pwd)"
bin="$build/bin"
mkdir -p "$bin"

src=""
for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-4.10.0+2.12.1/librdkafka; do
  [ -f "$d/examples/rdkafka_performance.c" ] && src="$d"
done
if [ -z "$src" ]; then
  # rdkafka-sys is a dev-dependency: fetching the workspace brings it in.
  (cd "$here/.." && cargo fetch >&2)
  for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-4.10.0+2.12.1/librdkafka; do
    [ -f "$d/examples/rdkafka_performance.c" ] && src="$d"
  done
fi
[ -n "$src" ] || { echo "build_tools: librdkafka source of rdkafka-sys 4.10.0 not found" >&2; exit 1; }

lib="$build/librdkafka"
if [ ! -f "$lib/src/librdkafka.a" ]; then
  echo "build_tools: building librdkafka from $src (a few minutes on one core)" >&2
  rm -rf "$lib"
  cp -r "$src" "$lib"
  (
    cd "$lib"
    # Plaintext only: no TLS, SASL, HTTP or external codecs to install.
    ./configure --disable-ssl --disable-gssapi --disable-curl --disable-zstd \
      --disable-lz4-ext --enable-static >&2
    make -C src -j"${CARGO_BUILD_JOBS:-1}" librdkafka.a >&2
  )
fi

libs="$lib/src/librdkafka.a -lpthread -lm -ldl -lrt"
if grep -q '^#define WITH_ZLIB 1' "$lib/config.h" 2>/dev/null; then libs="$libs -lz"; fi
cflags="-O2 -g -I$lib -I$lib/src"
compile() { # name source...
  local out="$bin/$1"; shift
  if [ ! -x "$out" ] || [ "$1" -nt "$out" ]; then
    echo "build_tools: compiling $(basename "$out")" >&2
    # shellcheck disable=SC2086
    cc $cflags -o "$out" "$@" $libs
  fi
}
compile rdkafka_performance "$lib/examples/rdkafka_performance.c"
compile mock_broker "$here/mock_broker.c"
compile create_topics "$here/create_topics.c"
echo "$bin"
