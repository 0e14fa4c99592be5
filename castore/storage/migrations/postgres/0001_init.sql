-- Cairn's metadata store on PostgreSQL, version 1.
-- Each Table the layers declare becomes a relation records."<name>" (key bytea primary key,
-- value bytea), created on first write; each next_id counter a sequence counters."<name>".
CREATE SCHEMA records;
CREATE SCHEMA counters;
