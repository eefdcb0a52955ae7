-- An LLM reply that came without usage (or a timeout that may have been billed) has an unknown
-- cost: it is stored as NULL, never as a silent 0.
ALTER TABLE llm_calls ALTER COLUMN cost_cents DROP NOT NULL;
-- Paid profile scrapes a user started on a UTC day, limited per day like analyses.
ALTER TABLE usage_daily ADD COLUMN profile_scrape_count INTEGER NOT NULL DEFAULT 0;
