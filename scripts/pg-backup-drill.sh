#!/bin/sh
# scripts/pg-backup-drill.sh — the PostgreSQL restore drill of scripts/pg-backup.sh on a
# throwaway cluster (as the postgres user when run as root): WAL archived by
# `pg-backup.sh wal-archive`, a base backup while the CA database is written, more writes, a
# point-in-time restore to between them into a new data directory, and checks that the
# restored cluster holds exactly what was committed before the target time; then the restored
# CA database refuses to issue until `jpki ca reconcile --confirm-no-journal`.
#   JPKI=target/debug/jpki scripts/pg-backup-drill.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
jpki=${JPKI:-$here/../target/debug/jpki}
[ -x "$jpki" ] || { echo "no jpki binary at $jpki (cargo build -p jpki; JPKI=…)" >&2; exit 1; }
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -rV | head -1)
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
work=$(mktemp -d /tmp/jpki-pg-drill.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres "$work"
port1=$((20000 + $$ % 20000)); port2=$((port1 + 1))
cleanup() {
    run "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    run "$bin/pg_ctl" -D "$work/restored" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
run mkdir "$work/archive"
run cp "$here/pg-backup.sh" "$work/pg-backup.sh"
run "$bin/initdb" -D "$work/data" -U jpki --auth=trust --no-sync >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
port = $port1
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
wal_level = replica
archive_mode = on
archive_command = '$work/pg-backup.sh wal-archive %p %f $work/archive'
CONF
run "$bin/pg_ctl" -D "$work/data" -w -l "$work/pg1.log" start >/dev/null
export PGHOST=127.0.0.1 PGUSER=jpki PGDATABASE=postgres
psql() { "$bin/psql" -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }
PGPORT=$port1 psql -c "CREATE DATABASE jpki_ca"
url1="postgres://jpki@127.0.0.1:$port1/jpki_ca"
export JPKI_CA_PASSPHRASE=drill-ca-passphrase
"$jpki" ca init --actor op-1 --db "$url1" --keys "$work/keys" --shards 2 >/dev/null
# The base backup, taken while the database is being written.
PGPORT=$port1 psql -d jpki_ca -c "CREATE TABLE drill (n INT, at TIMESTAMPTZ DEFAULT now())"
( for i in 1 2 3 4 5; do PGPORT=$port1 psql -d jpki_ca -c "INSERT INTO drill (n) VALUES ($i)"; sleep 0.2; done ) &
writer=$!
run env PGHOST=127.0.0.1 PGPORT=$port1 PGUSER=jpki "$work/pg-backup.sh" base "$work/base"
wait $writer
# A second base backup into the same place is refused.
if run env PGPORT=$port1 "$work/pg-backup.sh" base "$work/base" 2>/dev/null; then echo "overwrote a base backup" >&2; exit 1; fi
sleep 1.1
target=$(PGPORT=$port1 psql -c "SELECT now()")
sleep 1.1
PGPORT=$port1 psql -d jpki_ca -c "INSERT INTO drill (n) VALUES (99)"
PGPORT=$port1 psql -c "SELECT pg_switch_wal()" >/dev/null
# Wait until the segment holding the last insert is archived.
for _ in $(seq 50); do
    [ "$(PGPORT=$port1 psql -c "SELECT last_archived_wal IS NOT NULL AND last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) FROM pg_stat_archiver")" = t ] && break
    sleep 0.2
done
run "$bin/pg_ctl" -D "$work/data" -m fast stop >/dev/null
run "$work/pg-backup.sh" restore "$work/base" "$work/archive" "$work/restored" "$target"
sed -i "s/^port = $port1/port = $port2/" "$work/restored/postgresql.conf"
run "$bin/pg_ctl" -D "$work/restored" -w -t 120 -l "$work/pg2.log" start >/dev/null
for _ in $(seq 100); do [ "$(PGPORT=$port2 psql -c "SELECT pg_is_in_recovery()")" = f ] && break; sleep 0.2; done
got=$(PGPORT=$port2 psql -d jpki_ca -c "SELECT string_agg(n::text, ',' ORDER BY n) FROM drill")
[ "$got" = "1,2,3,4,5" ] || { echo "restored rows: '$got', want 1,2,3,4,5 (99 came after the target)" >&2; cat "$work/pg2.log" >&2; exit 1; }
url2="postgres://jpki@127.0.0.1:$port2/jpki_ca"
"$jpki" ca mark-restored --actor op-2 --db "$url2" --keys "$work/keys" --detail "drill: PITR to $target" >/dev/null
"$jpki" ca audit --actor op-2 --db "$url2" --keys "$work/keys" | tail -1
"$jpki" ca reconcile --actor op-2 --db "$url2" --keys "$work/keys" --confirm-no-journal
echo "pg drill ok: point-in-time restore to $target holds rows 1–5, not 99; the CA was reconciled"
