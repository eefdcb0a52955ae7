-- Which process holds a job's lock and runs a job: a lock whose holder is gone (same host, the
-- process no longer exists or is another process by now) is freed at once, and its run is marked
-- abandoned, instead of both waiting for the lock to expire. The process's start time (seconds
-- since the epoch) tells a live holder from a later process that reuses its pid.
ALTER TABLE job_locks ADD COLUMN pid INTEGER;
ALTER TABLE job_locks ADD COLUMN host VARCHAR;
ALTER TABLE job_locks ADD COLUMN process_started DOUBLE;
ALTER TABLE job_runs ADD COLUMN pid INTEGER;
ALTER TABLE job_runs ADD COLUMN host VARCHAR;
