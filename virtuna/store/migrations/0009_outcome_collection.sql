-- Outcomes collected by scraping the posted video 48 hours after posting (collect-outcomes).
-- A user opts in to having their posts' stats collected; nothing is scraped without it.
ALTER TABLE users ADD COLUMN outcome_consent BOOLEAN NOT NULL DEFAULT FALSE;
-- The TikTok video an analysis became: linked by the user (a URL) or matched automatically.
ALTER TABLE analysis_results ADD COLUMN posted_video_id VARCHAR;
ALTER TABLE analysis_results ADD COLUMN posted_url VARCHAR;
ALTER TABLE analysis_results ADD COLUMN linked_at TIMESTAMP;
-- 'url' (PATCH /api/analyses/{id}) or 'matched' (collect-outcomes); DuckDB cannot add a CHECK.
ALTER TABLE analysis_results ADD COLUMN link_method VARCHAR;
-- When a scraped outcome's counts were read, and how old the video was then.
ALTER TABLE outcomes ADD COLUMN scraped_at TIMESTAMP;
ALTER TABLE outcomes ADD COLUMN video_age_hours DOUBLE;
