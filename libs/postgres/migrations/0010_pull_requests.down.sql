ALTER TABLE tickets DROP COLUMN pull_request_url;
ALTER TABLE runs DROP COLUMN pull_request_url;
