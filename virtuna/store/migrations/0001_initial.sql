-- The whole mission's tables. All timestamps are UTC (TIMESTAMP without zone; every connection
-- runs with TimeZone = 'UTC'). Money is exact: DECIMAL cents, never rounded to whole cents.

-- Scraped videos from every source, one row per (platform, platform_video_id).
CREATE TABLE scraped_videos (
    platform            VARCHAR NOT NULL DEFAULT 'tiktok',
    platform_video_id   VARCHAR NOT NULL,
    video_url           VARCHAR,
    posted_at           TIMESTAMP,          -- the post time on TikTok (createTime), not scrape time
    author_handle       VARCHAR,            -- without '@', lowercased
    author_id           VARCHAR,
    author_followers    BIGINT,             -- as displayed when scraped; NULL when unknown
    author_hearts       BIGINT,
    author_videos       BIGINT,
    author_verified     BOOLEAN,
    description         VARCHAR,
    hashtags            VARCHAR[],          -- lowercased names WITHOUT '#'
    sound_id            VARCHAR,
    sound_name          VARCHAR,
    sound_author        VARCHAR,
    sound_original      BOOLEAN,
    duration_seconds    DOUBLE,
    views               BIGINT,
    likes               BIGINT,
    shares              BIGINT,
    comments            BIGINT,
    saves               BIGINT,             -- collectCount, when the source has it
    source              VARCHAR NOT NULL,   -- adapter name: apify, drawrowfly, timeline_csv, trending_csv
    source_ref          VARCHAR,            -- file name or Apify run id the row came from
    scraped_at          TIMESTAMP,          -- when the source says it scraped the row, if it says
    ingested_at         TIMESTAMP NOT NULL, -- first time this store saw the video
    updated_at          TIMESTAMP NOT NULL, -- last time an ingest wrote it
    raw                 JSON,               -- the source item as read, for audits and re-mapping
    PRIMARY KEY (platform, platform_video_id)
);

-- Rows an ingest could not accept, with the reason; nothing is dropped silently.
CREATE TABLE ingest_rejects (
    source       VARCHAR NOT NULL,
    source_ref   VARCHAR NOT NULL,
    position     BIGINT NOT NULL,          -- 0-based item / data-row index within the source
    reason       VARCHAR NOT NULL,
    raw          VARCHAR,
    rejected_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (source_ref, position)
);

-- Creators we know of (from scrapes or tracked on request).
CREATE TABLE creators (
    handle           VARCHAR PRIMARY KEY,  -- without '@', lowercased
    platform         VARCHAR NOT NULL DEFAULT 'tiktok',
    author_id        VARCHAR,
    nickname         VARCHAR,
    followers        BIGINT,
    hearts           BIGINT,
    videos           BIGINT,
    verified         BOOLEAN,
    bio              VARCHAR,
    tracked          BOOLEAN NOT NULL DEFAULT FALSE,
    scrape_status    VARCHAR,               -- pending, running, succeeded, failed
    last_error       VARCHAR,
    last_scraped_at  TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);

CREATE TABLE creator_snapshots (
    handle         VARCHAR NOT NULL,
    snapshot_date  DATE NOT NULL,
    followers      BIGINT,
    hearts         BIGINT,
    videos         BIGINT,
    taken_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (handle, snapshot_date)
);

-- Apify actor runs we started or were told about.
CREATE TABLE scrape_runs (
    run_id        VARCHAR PRIMARY KEY,
    kind          VARCHAR NOT NULL,          -- trending, profile
    actor_id      VARCHAR NOT NULL,
    hashtags      VARCHAR[],
    handle        VARCHAR,
    state         VARCHAR NOT NULL,          -- Apify status (READY, RUNNING, SUCCEEDED, ...) or INGESTED
    dataset_id    VARCHAR,
    item_count    BIGINT,
    suspect       BOOLEAN NOT NULL DEFAULT FALSE,
    error         VARCHAR,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    ingested_at   TIMESTAMP
);

-- Trend snapshots: one set of rows per (as_of, window_hours), so "trends as of t" is a query.
CREATE TABLE trending_sounds (
    as_of           TIMESTAMP NOT NULL,
    window_hours    INTEGER NOT NULL,
    sound_key       VARCHAR NOT NULL,        -- sound id when known, else the lowercased name
    sound_name      VARCHAR NOT NULL,
    video_count     BIGINT NOT NULL,
    total_views     BIGINT NOT NULL,
    recent_views    BIGINT NOT NULL,
    older_views     BIGINT NOT NULL,
    growth_rate     DOUBLE NOT NULL,
    velocity_score  DOUBLE NOT NULL,
    trend_phase     VARCHAR NOT NULL CHECK (trend_phase IN ('emerging', 'rising', 'peak', 'declining')),
    first_seen      TIMESTAMP,
    last_seen       TIMESTAMP,
    calculated_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (as_of, window_hours, sound_key)
);

CREATE TABLE trending_hashtags (
    as_of           TIMESTAMP NOT NULL,
    window_hours    INTEGER NOT NULL,
    hashtag         VARCHAR NOT NULL,        -- without '#'
    video_count     BIGINT NOT NULL,
    total_views     BIGINT NOT NULL,
    recent_views    BIGINT NOT NULL,
    older_views     BIGINT NOT NULL,
    growth_rate     DOUBLE NOT NULL,
    velocity_score  DOUBLE NOT NULL,
    trend_phase     VARCHAR NOT NULL CHECK (trend_phase IN ('emerging', 'rising', 'peak', 'declining')),
    share_of_videos DOUBLE NOT NULL,         -- video_count / videos in the window (saturation)
    first_seen      TIMESTAMP,
    last_seen       TIMESTAMP,
    calculated_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (as_of, window_hours, hashtag)
);

CREATE TABLE rule_library (
    id                 VARCHAR PRIMARY KEY,
    name               VARCHAR NOT NULL UNIQUE,
    description        VARCHAR,
    category           VARCHAR NOT NULL
        CHECK (category IN ('hook', 'retention', 'platform', 'audio', 'text', 'timing', 'creator')),
    pattern            VARCHAR,
    score_modifier     INTEGER,
    platform           VARCHAR,                -- NULL = every platform
    evaluation_tier    VARCHAR NOT NULL DEFAULT 'regex' CHECK (evaluation_tier IN ('regex', 'semantic')),
    evaluation_prompt  VARCHAR,
    weight             DOUBLE NOT NULL DEFAULT 1.0,
    max_score          DOUBLE NOT NULL DEFAULT 10.0,
    accuracy_rate      DOUBLE,
    sample_count       INTEGER NOT NULL DEFAULT 0,
    is_active          BOOLEAN NOT NULL DEFAULT TRUE,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);

-- Every prediction with every field (ml_score, is_calibrated and rule_contributions included).
CREATE TABLE analysis_results (
    id                      VARCHAR PRIMARY KEY,
    request_id              VARCHAR,
    user_id                 VARCHAR,
    input_mode              VARCHAR NOT NULL CHECK (input_mode IN ('text', 'tiktok_url', 'video_upload')),
    content_text            VARCHAR,
    content_type            VARCHAR,
    niche                   VARCHAR,
    creator_handle          VARCHAR,
    video_url               VARCHAR,
    hashtags                VARCHAR[],
    planned_post_time       TIMESTAMP,
    overall_score           DOUBLE NOT NULL,
    raw_score               DOUBLE,          -- before Platt scaling
    confidence              DOUBLE NOT NULL,
    confidence_label        VARCHAR NOT NULL,
    is_calibrated           BOOLEAN NOT NULL DEFAULT FALSE,
    calibration_version     INTEGER,
    rule_score              DOUBLE,
    trend_score             DOUBLE,
    gemini_score            DOUBLE,
    behavioral_score        DOUBLE,
    ml_score                DOUBLE,          -- NULL when the tier model was unavailable
    ml_model_id             VARCHAR,
    score_weights           JSON,
    factors                 JSON,
    suggestions             JSON,
    behavioral_predictions  JSON,
    feature_vector          JSON,
    rule_contributions      JSON,
    rules_evaluated         INTEGER,
    warnings                VARCHAR[],
    stage_timings           JSON,
    cost_cents              DECIMAL(18, 6) NOT NULL DEFAULT 0,
    latency_ms              DOUBLE,
    engine_version          VARCHAR,
    gemini_model            VARCHAR,
    deepseek_model          VARCHAR,
    has_video               BOOLEAN NOT NULL DEFAULT FALSE,
    is_backtest             BOOLEAN NOT NULL DEFAULT FALSE,
    source_video_id         VARCHAR,         -- the scraped video a backtest analysis replays
    created_at              TIMESTAMP NOT NULL,
    deleted_at              TIMESTAMP
);

CREATE TABLE outcomes (
    id                      VARCHAR PRIMARY KEY,
    analysis_id             VARCHAR NOT NULL UNIQUE,
    user_id                 VARCHAR,
    actual_views            BIGINT,
    actual_likes            BIGINT,
    actual_shares           BIGINT,
    actual_comments         BIGINT,
    actual_engagement_rate  DOUBLE,
    actual_score            DOUBLE,
    actual_tier             INTEGER,
    predicted_score         DOUBLE,
    delta                   DOUBLE,
    platform                VARCHAR,
    platform_post_url       VARCHAR,
    source                  VARCHAR NOT NULL DEFAULT 'user',   -- user, backtest
    reported_at             TIMESTAMP NOT NULL,
    created_at              TIMESTAMP NOT NULL,
    deleted_at              TIMESTAMP
);

-- One row per LLM request, whatever the provider or purpose; cost kept exact.
CREATE TABLE llm_calls (
    id               VARCHAR PRIMARY KEY,
    request_id       VARCHAR,
    analysis_id      VARCHAR,
    provider         VARCHAR NOT NULL,
    model            VARCHAR NOT NULL,
    purpose          VARCHAR,                 -- content_factors, behavioural, semantic_rules, ...
    input_tokens     BIGINT,
    cached_tokens    BIGINT,
    output_tokens    BIGINT,
    thinking_tokens  BIGINT,
    cost_cents       DECIMAL(18, 6) NOT NULL DEFAULT 0,
    latency_ms       DOUBLE,
    status           VARCHAR NOT NULL,        -- ok, error, timeout, invalid
    error            VARCHAR,
    created_at       TIMESTAMP NOT NULL
);

CREATE TABLE models (
    id            VARCHAR PRIMARY KEY,
    tier_scheme   VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,
    card          JSON NOT NULL,
    metrics       JSON,
    row_count     BIGINT,
    is_active     BOOLEAN NOT NULL DEFAULT FALSE,
    status        VARCHAR NOT NULL,            -- trained, promoted, refused
    reason        VARCHAR,
    trained_at    TIMESTAMP NOT NULL,
    promoted_at   TIMESTAMP
);

CREATE TABLE calibration_params (
    version         INTEGER PRIMARY KEY,
    method          VARCHAR NOT NULL DEFAULT 'platt',
    a               DOUBLE NOT NULL,
    b               DOUBLE NOT NULL,
    window_start    TIMESTAMP,
    window_end      TIMESTAMP,
    sample_count    INTEGER NOT NULL,
    ece_before      DOUBLE,
    ece_after       DOUBLE,
    logloss_before  DOUBLE,
    logloss_after   DOUBLE,
    is_active       BOOLEAN NOT NULL DEFAULT FALSE,
    fitted_at       TIMESTAMP NOT NULL,
    activated_at    TIMESTAMP
);

CREATE TABLE job_runs (
    id               VARCHAR PRIMARY KEY,
    job              VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,         -- running, succeeded, failed, skipped
    parameters       JSON,
    output_notebook  VARCHAR,
    output_html      VARCHAR,
    error            VARCHAR,
    started_at       TIMESTAMP NOT NULL,
    finished_at      TIMESTAMP,
    duration_ms      DOUBLE
);

-- At most one run of a job at a time; a lock past expires_at belongs to a crashed run.
CREATE TABLE job_locks (
    job          VARCHAR PRIMARY KEY,
    holder       VARCHAR NOT NULL,
    acquired_at  TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id          VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL UNIQUE,
    tier        VARCHAR NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'starter', 'pro')),
    creator_handle VARCHAR,
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE api_keys (
    key_hash    VARCHAR PRIMARY KEY,           -- sha256 of the key; the key itself is never stored
    user_id     VARCHAR NOT NULL,
    prefix      VARCHAR NOT NULL,              -- first characters, to recognise a key in listings
    created_at  TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP
);

CREATE TABLE usage_daily (
    user_id         VARCHAR NOT NULL,
    day             DATE NOT NULL,             -- UTC date
    analysis_count  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);

CREATE TABLE user_subscriptions (
    user_id             VARCHAR PRIMARY KEY,
    whop_user_id        VARCHAR,
    whop_membership_id  VARCHAR,
    whop_product_id     VARCHAR,
    tier                VARCHAR NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'starter', 'pro')),
    status              VARCHAR NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'cancelled', 'expired', 'past_due')),
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    current_period_end  TIMESTAMP,
    last_synced_at      TIMESTAMP
);
