-- Online point-in-time inputs, kept up to date by every upsert of videos and read by key
-- (see virtuna/store/online.py). Filled from the stored videos right after this migration.
-- Only the keys ON CONFLICT needs are indexed here (each index costs every ingest); engines
-- index their in-memory copy by the keys they look up.
CREATE TABLE online_creator_posts (
    author_key  VARCHAR NOT NULL,      -- coalesce(author_handle, author_id)
    video_id    VARCHAR PRIMARY KEY,   -- scraped_videos.platform_video_id
    posted_at   TIMESTAMP NOT NULL,
    views       BIGINT,
    likes       BIGINT,
    comments    BIGINT,
    shares      BIGINT,
    followers   BIGINT,                -- as displayed when the post was scraped
    hearts      BIGINT,
    videos      BIGINT,
    verified    BOOLEAN
);

CREATE TABLE online_sound_days (
    sound_key   VARCHAR NOT NULL,
    day         TIMESTAMP NOT NULL,
    uses        BIGINT NOT NULL,
    log_views   DOUBLE,                -- sum of ln(1 + views) of the day's posts
    PRIMARY KEY (sound_key, day)
);

CREATE TABLE online_hashtag_days (
    tag         VARCHAR NOT NULL,
    day         TIMESTAMP NOT NULL,
    uses        BIGINT NOT NULL,
    PRIMARY KEY (tag, day)
);
