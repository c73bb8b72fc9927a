"""The SQL of a PostgreSQL store: its tables, and one statement per operation.

The layout and why each write takes the meta row's lock first:
docs/concepts/postgres-store.md.
"""

from __future__ import annotations

#: This module's table layout, kept in the meta row (a newer one is refused).
LAYOUT = 1
#: Bytes of a key in the `list_keys` index: btree entries hold about 2.7 kB.
_INDEX_PREFIX = 1024


class Statements:
    """The SQL of one store; names are checked identifiers, quoted."""

    def __init__(self, schema: str, table: str, channel: str) -> None:
        def name(suffix: str = "") -> str:
            return f'"{schema}"."{table}{suffix}"'

        kv, changes, positions, meta = name(), name("__changes"), name("__positions"), name("__meta")
        leases, members = name("__leases"), name("__members")
        self.meta = meta
        p = _INDEX_PREFIX
        self.schema_exists = f"SELECT to_regnamespace('\"{schema}\"')"
        self.present = (
            f"SELECT to_regclass('{kv}') IS NOT NULL, to_regclass('{changes}') IS NOT NULL, "
            f"to_regclass('{positions}') IS NOT NULL, to_regclass('{meta}') IS NOT NULL, "
            f"to_regclass('{leases}') IS NOT NULL, to_regclass('{members}') IS NOT NULL"
        )
        self.create_schema = f'CREATE SCHEMA IF NOT EXISTS "{schema}"'
        # A tombstone is a row whose value is NULL; it only carries the version.
        self.create_tables = (
            f"""CREATE TABLE IF NOT EXISTS {kv} (
                key bytea NOT NULL,
                value bytea,
                version bigint NOT NULL,
                key_hash bytea GENERATED ALWAYS AS (sha256(key)) STORED,
                CONSTRAINT "{table}__pkey" PRIMARY KEY (key_hash)
            )""",
            f'CREATE INDEX IF NOT EXISTS "{table}__live" ON {kv} (substr(key, 1, {p})) '
            "WHERE value IS NOT NULL",
            f'CREATE INDEX IF NOT EXISTS "{table}__tombstones" ON {kv} (version) WHERE value IS NULL',
            f"""CREATE TABLE IF NOT EXISTS {changes} (
                seq bigint NOT NULL,
                key bytea NOT NULL,
                value bytea,
                CONSTRAINT "{table}__changes_pkey" PRIMARY KEY (seq)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {positions} (
                name bytea NOT NULL,
                seq bigint NOT NULL,
                CONSTRAINT "{table}__positions_pkey" PRIMARY KEY (name)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {meta} (
                id integer NOT NULL CHECK (id = 0),
                seq bigint NOT NULL,
                watermark bigint NOT NULL,
                layout integer NOT NULL,
                CONSTRAINT "{table}__meta_pkey" PRIMARY KEY (id)
            )""",
            f"INSERT INTO {meta} (id, seq, watermark, layout) VALUES (0, 0, 0, {LAYOUT}) "
            "ON CONFLICT DO NOTHING",
            # Leases of feed readers that take turns (see `acquire_lease`);
            # created on open like the rest, so older stores get them too.
            f"""CREATE TABLE IF NOT EXISTS {leases} (
                name bytea NOT NULL,
                token bigint NOT NULL,
                holder text NOT NULL,
                previous text NOT NULL,
                expires timestamptz NOT NULL,
                claimed bigint NOT NULL,
                CONSTRAINT "{table}__leases_pkey" PRIMARY KEY (name)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {members} (
                grp bytea NOT NULL,
                member text NOT NULL,
                expires timestamptz NOT NULL,
                CONSTRAINT "{table}__members_pkey" PRIMARY KEY (grp, member)
            )""",
        )
        self.layout = f"SELECT layout FROM {meta} WHERE id = 0"
        self.listen = f'LISTEN "{channel}"'

        by_key = "key_hash = sha256(%s)"
        self.get = f"SELECT value FROM {kv} WHERE {by_key}"
        self.exists = f"SELECT 1 FROM {kv} WHERE {by_key} AND value IS NOT NULL"
        self.get_versioned = (
            f"SELECT kv.value, coalesce(kv.version, m.watermark) FROM {meta} m "
            f"LEFT JOIN {kv} kv ON kv.{by_key} WHERE m.id = 0"
        )
        self.current_version = (
            f"SELECT coalesce((SELECT version FROM {kv} WHERE {by_key}), watermark) FROM {meta} WHERE id = 0"
        )
        self.get_many = (
            f"SELECT kv.value FROM unnest(%s::bytea[]) WITH ORDINALITY AS k(key, i) "
            f"LEFT JOIN {kv} kv ON kv.key_hash = sha256(k.key) ORDER BY k.i"
        )
        # (prefix, key) order is key order; the prefix is what the index holds.
        order = f"ORDER BY substr(key, 1, {p}), key"
        self.list_first = f"SELECT key FROM {kv} WHERE value IS NOT NULL {order} LIMIT %s"
        self.list_after = (
            f"SELECT key FROM {kv} WHERE value IS NOT NULL AND substr(key, 1, {p}) >= substr(%s, 1, {p}) "
            f"AND key > %s {order} LIMIT %s"
        )
        self.lock = f"SELECT seq FROM {meta} WHERE id = 0 FOR UPDATE"
        # One statement per write: take n numbers (locking the meta row until
        # the commit), notify, log every item, and upsert the last value of
        # each key. Parameters: n, keys, values.
        bump = (
            f"WITH s AS (UPDATE {meta} SET seq = seq + %s WHERE id = 0 "
            f"RETURNING seq, pg_notify('{channel}', seq::text))"
        )
        upsert = (
            f"INSERT INTO {kv} (key, value, version) "
            "SELECT DISTINCT ON (key) key, value, seq FROM items ORDER BY key, seq DESC "
            "ON CONFLICT (key_hash) DO UPDATE SET value = excluded.value, version = excluded.version"
        )
        self.set_many = (
            f"{bump}, items AS (SELECT s.seq - count(*) OVER () + t.i AS seq, t.key, t.value "
            "FROM s, unnest(%s::bytea[], %s::bytea[]) WITH ORDINALITY AS t(key, value, i)), "
            f"log AS (INSERT INTO {changes} (seq, key, value) SELECT seq, key, value FROM items) {upsert}"
        )
        self.delete_many = (
            f"{bump}, items AS (SELECT s.seq - count(*) OVER () + t.i AS seq, t.key, NULL::bytea AS value "
            "FROM s, unnest(%s::bytea[]) WITH ORDINALITY AS t(key, i)), "
            f"log AS (INSERT INTO {changes} (seq, key, value) SELECT seq, key, value FROM items) {upsert}"
        )
        self.prune_tombstones = (
            f"WITH d AS (DELETE FROM {kv} WHERE value IS NULL "
            f"AND version < (SELECT seq FROM {meta} WHERE id = 0) - %s RETURNING version) "
            f"UPDATE {meta} SET watermark = greatest(watermark, (SELECT max(version) FROM d)) WHERE id = 0"
        )
        self.changes = f"SELECT seq, key, value FROM {changes} WHERE seq > %s ORDER BY seq LIMIT %s"
        self.last_change = f"SELECT seq FROM {meta} WHERE id = 0"
        self.drop_old_changes = (
            f"DELETE FROM {changes} WHERE seq <= (SELECT seq FROM {meta} WHERE id = 0) - %s"
        )
        self.load_position = f"SELECT seq FROM {positions} WHERE name = %s"
        self.save_position = (
            f"INSERT INTO {positions} (name, seq) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq"
        )

        # Leases: expiry by the server's clock; the row (and so the token,
        # which only grows) outlives the lease. One statement each.
        until = "clock_timestamp() + %s * interval '1 millisecond'"
        self.acquire_lease = (
            f"INSERT INTO {leases} AS l (name, token, holder, previous, expires, claimed) "
            f"VALUES (%s, 1, %s, '', {until}, 0) ON CONFLICT (name) DO UPDATE SET token = l.token + 1, "
            "previous = l.holder, holder = excluded.holder, expires = excluded.expires "
            "WHERE l.expires <= clock_timestamp() RETURNING token, previous, claimed"
        )
        self.lease = f"SELECT token, holder, claimed FROM {leases} WHERE name = %s"
        self.renew_lease = f"UPDATE {leases} SET expires = {until} WHERE name = %s AND token = %s"
        self.release_lease = (
            f"UPDATE {leases} SET expires = '-infinity', holder = '' WHERE name = %s AND token = %s"
        )
        # Parameters: claimed, name, token, position.
        self.save_fenced = (
            f"WITH l AS (UPDATE {leases} SET claimed = %s WHERE name = %s AND token = %s RETURNING name) "
            f"INSERT INTO {positions} (name, seq) SELECT name, %s FROM l "
            "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq RETURNING seq"
        )
        # Parameters: group, member, milliseconds, group, member. The count
        # sees the table as the statement began: the member itself is added.
        self.lease_members = (
            f"WITH j AS (INSERT INTO {members} (grp, member, expires) VALUES (%s, %s, {until}) "
            "ON CONFLICT (grp, member) DO UPDATE SET expires = excluded.expires), "
            f"d AS (DELETE FROM {members} WHERE grp = %s AND expires <= clock_timestamp()) "
            f"SELECT 1 + count(*) FROM {members} WHERE grp = %s AND member <> %s "
            "AND expires > clock_timestamp()"
        )
