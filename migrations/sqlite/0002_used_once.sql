-- Single-use values (OAuth state, tickets), remembered until they would have expired anyway.
-- In the store rather than in memory so that a replay is refused by every instance and
-- across restarts.
CREATE TABLE used_once (
    id         TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL  -- unix seconds
) WITHOUT ROWID;
CREATE INDEX used_once_expires_at ON used_once (expires_at);
