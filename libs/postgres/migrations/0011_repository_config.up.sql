-- A run's effective repository configuration (RepositoryConfigLoaded): the event's data —
-- source (file or default), the raw .ticketflow.yml's sha256 and size, and config (the CI
-- command and whose it is, the editable globs, the limits the run uses, what was refused).
-- NULL until prepare_repository has read it (and for the simulated executor, which reads none).
ALTER TABLE runs ADD COLUMN repository_config jsonb;
