-- Why a run ended as it did, in the notebook's (or the runner's) words: the index shows it
-- for every run, also those that started no kernel (a job skipped for a missing key).
ALTER TABLE job_runs ADD COLUMN summary VARCHAR;
