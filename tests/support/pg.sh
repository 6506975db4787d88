#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on 127.0.0.1 and a free port, data in a
# temporary folder. As root, the server runs as the `postgres` user (initdb refuses root).
#
#   eval "$(bash tests/support/pg.sh start)"   # exports SLUICE_PG_DIR, SLUICE_PG_PORT, DATABASE_URL,
#                                               # SLUICE_PG_CA, SLUICE_PG_OTHER_CA
#   bash tests/support/pg.sh pause  DIR         # crash the server (immediate stop), keep the data (an outage)
#   bash tests/support/pg.sh resume DIR         # start it again on the same port
#   bash tests/support/pg.sh stop   DIR         # stop it (by the postmaster's PID) and delete DIR
set -euo pipefail
cmd="${1:-}"
dir="${2:-${SLUICE_PG_DIR:-}}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$bin" ]; then
  echo "pg.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 2
fi
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# Fast but durable against a server crash: `fsync=off` only skips the flush to disk (the OS
# keeps what was written, which survives the server's death, not the machine's).
# `synchronous_commit` stays on: with it off a commit is acknowledged before its WAL is written,
# and `pause` (an immediate stop, i.e. a crash) then loses the last acknowledged commits — the
# cause of the outage test's missing rows (tests/pg_replicas.rs), PostgreSQL's loss, not
# Sluice's.
# TLS (tests/pg_tls.rs): the server offers it with a certificate for `localhost` only, signed
# by a throwaway CA (ca.pem); other-ca.pem is a second CA that signed nothing of it.
make_certs() {
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  # Chained with && (set -e does not act inside an `if` condition).
  if ! (
    cd "$dir" &&
      openssl req -x509 "${ec[@]}" -days 3 -subj /CN=sluice-test-ca -keyout ca.key -out ca.pem &&
      openssl req -x509 "${ec[@]}" -days 3 -subj /CN=sluice-other-ca -keyout other-ca.key -out other-ca.pem &&
      openssl req "${ec[@]}" -subj /CN=localhost -keyout server.key -out server.csr &&
      printf 'subjectAltName=DNS:localhost\n' >server.ext &&
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 \
        -extfile server.ext -out server.crt &&
      chmod 600 server.key &&
      if [ "$(id -u)" = 0 ]; then chown postgres: server.key server.crt; fi
  ) >"$dir/certs.log" 2>&1; then
    echo "pg.sh: making the test certificates failed (is openssl installed?):" >&2
    cat "$dir/certs.log" >&2
    exit 1
  fi
}
server_start() {
  local port
  port="$(cat "$dir/port")"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c full_page_writes=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" >/dev/null
}
case "$cmd" in
  start)
    dir="$(mktemp -d /tmp/sluice-pg.XXXXXX)"
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' >"$dir/port"
    as_pg "$bin/initdb" -D "$dir/data" -U sluice --auth=trust -E UTF8 --no-sync >/dev/null
    make_certs
    server_start
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$(cat "$dir/port")" -U sluice sluice
    echo "export SLUICE_PG_DIR=$dir SLUICE_PG_PORT=$(cat "$dir/port") DATABASE_URL=postgres://sluice@127.0.0.1:$(cat "$dir/port")/sluice SLUICE_PG_CA=$dir/ca.pem SLUICE_PG_OTHER_CA=$dir/other-ca.pem"
    ;;
  pause)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null
    ;;
  resume)
    server_start
    ;;
  stop)
    [ -n "$dir" ] && [ -d "$dir" ] || exit 0
    if [ -f "$dir/data/postmaster.pid" ]; then
      pid="$(head -1 "$dir/data/postmaster.pid")"
      kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: pg.sh start | pause DIR | resume DIR | stop DIR" >&2
    exit 2
    ;;
esac
