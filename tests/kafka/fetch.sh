#!/usr/bin/env bash
# Fetches the Apache Kafka broker pinned by tests/kafka/pom.xml from Maven Central, once per
# machine, into $HERALD_KAFKA_CACHE/<version>/libs (default ~/.cache/herald-kafka), and prints
# that directory on its last line. The end-to-end harness runs it on first use; .ci/run too.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
cache="${HERALD_KAFKA_CACHE:-$HOME/.cache/herald-kafka}/$version"
libs="$cache/libs"
if [ -f "$cache/complete" ]; then
  echo "$libs"
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch.sh: mvn not found; install Maven to fetch Apache Kafka $version" >&2; exit 1; }
command -v java >/dev/null || { echo "fetch.sh: java not found; Apache Kafka $version needs Java 17 or newer" >&2; exit 1; }
mkdir -p "$cache"
# One fetch at a time per machine (tests run in parallel).
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$cache/complete" ]; then
  echo "fetch.sh: fetching Apache Kafka $version and its runtime jars from Maven Central into $libs" >&2
  rm -rf "$libs.partial"
  if ! mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$libs.partial" >"$cache/mvn.log" 2>&1; then
    echo "fetch.sh: mvn failed to fetch Apache Kafka $version; its output:" >&2
    tail -n 40 "$cache/mvn.log" >&2
    exit 1
  fi
  rm -rf "$libs"
  mv "$libs.partial" "$libs"
  touch "$cache/complete"
fi
echo "$libs"
