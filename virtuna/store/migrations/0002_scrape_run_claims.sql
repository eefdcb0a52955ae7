-- A webhook delivery or a job claims a finished run before ingesting its items, so concurrent
-- deliveries do not ingest the same run twice; a claim older than the claim timeout is stale
-- (its holder crashed) and may be taken over.
ALTER TABLE scrape_runs ADD COLUMN ingest_claimed_at TIMESTAMP;
ALTER TABLE scrape_runs ADD COLUMN inserted BIGINT;
ALTER TABLE scrape_runs ADD COLUMN updated BIGINT;
ALTER TABLE scrape_runs ADD COLUMN rejected BIGINT;
