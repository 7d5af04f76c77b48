-- Every write of a grant gets a new version, so a refresh writes its result back only over
-- the grant it started from (compare-and-set) and never over a newer consent or import.
ALTER TABLE tokens ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
-- Versions come from one counter, never from the row: a grant deleted and created again
-- never gets back a version a refresh still holds.
CREATE TABLE grant_versions (last INTEGER NOT NULL);
INSERT INTO grant_versions (last) VALUES (0);
