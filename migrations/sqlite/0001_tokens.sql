-- One row per (platform, tool, user key): a user's grant to one tool on one LMS.
-- `sealed` is AES-256-GCM over the access and refresh tokens, bound to the key columns;
-- nothing secret is stored in the clear.
CREATE TABLE tokens (
    platform     TEXT    NOT NULL,
    tool         TEXT    NOT NULL,
    user_key     TEXT    NOT NULL,
    sealed       BLOB    NOT NULL,
    expires_at   INTEGER,          -- unix seconds; NULL when the LMS gave no expiry
    lms_user_id  TEXT,
    updated_at   INTEGER NOT NULL, -- unix seconds
    PRIMARY KEY (platform, tool, user_key)
) WITHOUT ROWID;
