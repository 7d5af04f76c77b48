-- One row per (platform, tool, user key): a user's grant to one tool on one LMS.
-- `sealed` is AES-256-GCM over the access and refresh tokens, bound to the key columns;
-- nothing secret is stored in the clear.
CREATE SEQUENCE lms_proxy_grant_versions;

CREATE TABLE lms_proxy_grants (
    platform     TEXT   NOT NULL,
    tool         TEXT   NOT NULL,
    user_key     TEXT   NOT NULL,
    sealed       BYTEA  NOT NULL,
    expires_at   BIGINT,           -- unix seconds; NULL when the LMS gave no expiry
    lms_user_id  TEXT,
    updated_at   BIGINT NOT NULL,  -- unix seconds
    -- Every write takes a new value from the sequence: a refresh writes back only over the
    -- version it read (compare-and-set), never over a newer consent or import.
    version      BIGINT NOT NULL,
    PRIMARY KEY (platform, tool, user_key)
);

-- Single-use values (OAuth state, tickets), remembered until they would have expired anyway:
-- a consent started on one instance finishes on any other, and a replay is refused by all.
CREATE TABLE lms_proxy_used_once (
    id         TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX lms_proxy_used_once_expires_at ON lms_proxy_used_once (expires_at);

-- Every change to a grant, from any instance or from `lms-proxy tokens`, tells every instance
-- to drop its cached copy. The payload names the grant and the writer (its application_name),
-- never a token.
CREATE FUNCTION lms_proxy_grant_changed() RETURNS trigger AS $$
DECLARE
    changed RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    PERFORM pg_notify('lms_proxy_grants', json_build_object(
        'w', current_setting('application_name', true),
        'p', changed.platform, 't', changed.tool, 'u', changed.user_key)::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER lms_proxy_grant_changed
    AFTER INSERT OR UPDATE OR DELETE ON lms_proxy_grants
    FOR EACH ROW EXECUTE FUNCTION lms_proxy_grant_changed();
