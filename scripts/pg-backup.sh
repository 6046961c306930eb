#!/bin/sh
# scripts/pg-backup.sh — PostgreSQL backups of jpki databases (identity nodes, the CA) by
# pg_basebackup plus WAL archiving, and point-in-time restore. docs/operations.md, "Backups
# and restore", is the procedure; this script does its steps. Connection settings come from
# the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSFILE or PGPASSWORD): never from argv.
#
#   pg-backup.sh wal-archive WAL_PATH WAL_NAME ARCHIVE_DIR
#       archive_command = '/path/to/pg-backup.sh wal-archive %p %f /srv/pg-archive'
#       Copies one WAL segment into ARCHIVE_DIR: written beside, fsynced, then renamed; a
#       segment already archived with other content is an error (never overwritten).
#   pg-backup.sh base DEST
#       A base backup into the new directory DEST (plain format, WAL streamed, SHA-256
#       manifest), checked with pg_verifybackup.
#   pg-backup.sh restore BASE ARCHIVE_DIR NEW_DATA [TARGET_TIME]
#       A new data directory from the base backup BASE that replays archived WAL up to
#       TARGET_TIME (e.g. '2026-12-06 00:20:00+00'; absent: to the end of the archive) and is
#       promoted there. Start it with pg_ctl -D NEW_DATA start.
set -eu

die() { echo "pg-backup.sh: $*" >&2; exit 1; }
bindir() {
    # Debian's versioned directory first (/usr/bin holds pg_wrapper links, not every tool).
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        [ -x "$d/pg_verifybackup" ] && { echo "$d"; return; }
    done
    command -v pg_verifybackup >/dev/null 2>&1 && { dirname "$(command -v pg_verifybackup)"; return; }
    die "pg_basebackup/pg_verifybackup not found (apt-get install postgresql-15)"
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: pg-backup.sh wal-archive|base|restore … (see the header)"
shift
case "$cmd" in
wal-archive)
    [ $# -eq 3 ] || die "usage: pg-backup.sh wal-archive WAL_PATH WAL_NAME ARCHIVE_DIR"
    src=$1 name=$2 dir=$3
    case "$name" in */*|'') die "bad WAL file name: $name";; esac
    [ -d "$dir" ] || die "no archive directory $dir"
    if [ -f "$dir/$name" ]; then
        # PostgreSQL may archive a segment again after a crash: the same bytes are fine.
        cmp -s "$src" "$dir/$name" && exit 0
        die "$dir/$name is archived already with other content: refusing to overwrite"
    fi
    tmp="$dir/.$name.tmp.$$"
    cp "$src" "$tmp"
    sync "$tmp"
    mv "$tmp" "$dir/$name"
    sync "$dir"
    ;;
base)
    [ $# -eq 1 ] || die "usage: pg-backup.sh base DEST"
    dest=$1
    [ ! -e "$dest" ] || die "$dest exists: refusing to overwrite it"
    bin=$(bindir)
    "$bin/pg_basebackup" -D "$dest" -Fp -X stream -c fast --manifest-checksums=SHA256 --label "jpki $(date -u +%FT%TZ)"
    "$bin/pg_verifybackup" "$dest"
    echo "base backup $dest verified"
    ;;
restore)
    [ $# -ge 3 ] && [ $# -le 4 ] || die "usage: pg-backup.sh restore BASE ARCHIVE_DIR NEW_DATA [TARGET_TIME]"
    base=$1 archive=$2 data=$3 target=${4:-}
    [ -f "$base/backup_manifest" ] || die "$base is not a base backup (no backup_manifest)"
    [ -d "$archive" ] || die "no archive directory $archive"
    [ ! -e "$data" ] || die "$data exists: refusing to overwrite it (move the damaged cluster aside)"
    bin=$(bindir)
    "$bin/pg_verifybackup" -n "$base" # WAL is checked by the replay itself
    cp -a "$base" "$data"
    chmod 700 "$data"
    rm -f "$data/backup_manifest"
    {
        echo "# jpki point-in-time restore ($(date -u +%FT%TZ))"
        echo "restore_command = 'cp \"$archive/%f\" \"%p\"'"
        [ -z "$target" ] || echo "recovery_target_time = '$target'"
        echo "recovery_target_action = 'promote'"
    } >>"$data/postgresql.auto.conf"
    touch "$data/recovery.signal"
    echo "restore prepared in $data: start it (pg_ctl -D $data start); a CA database then needs jpki ca reconcile"
    ;;
*) die "unknown command $cmd" ;;
esac
