-- The pull request (merge request on GitLab) of a run on the repository's forge, from its
-- PullRequestOpened event; the ticket's is its latest run's (one PR follows a ticket across
-- runs). Empty when there is none.
ALTER TABLE runs ADD COLUMN pull_request_url text NOT NULL DEFAULT '';
ALTER TABLE tickets ADD COLUMN pull_request_url text NOT NULL DEFAULT '';
