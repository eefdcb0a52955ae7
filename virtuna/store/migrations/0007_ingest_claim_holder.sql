-- An ingest claim names its holder (host, pid and process start time) and carries a heartbeat,
-- so a claim whose holder died is taken over at once instead of after the claim timeout.
ALTER TABLE scrape_runs ADD COLUMN ingest_holder VARCHAR;
ALTER TABLE scrape_runs ADD COLUMN ingest_heartbeat_at TIMESTAMP;
