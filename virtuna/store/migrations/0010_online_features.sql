-- Online point-in-time inputs, kept up to date by every upsert of videos and read by key
-- (see virtuna/store/online.py). Filled from the stored videos right after this migration.
CREATE TABLE online_creators (
    author_key  VARCHAR PRIMARY KEY,   -- coalesce(author_handle, author_id)
    video_id    VARCHAR[],             -- the creator's posts, ordered by (posted_at, video_id)
    posted_at   TIMESTAMP[],
    views       BIGINT[],
    likes       BIGINT[],
    comments    BIGINT[],
    shares      BIGINT[],
    followers   BIGINT[],              -- as displayed when each post was scraped
    hearts      BIGINT[],
    videos      BIGINT[],
    verified    BOOLEAN[]
);

CREATE TABLE online_sounds (
    sound_key   VARCHAR PRIMARY KEY,
    days        TIMESTAMP[],           -- days with uses, ascending
    uses        BIGINT[],
    log_views   DOUBLE[]               -- sum of ln(1 + views) of the day's posts
);

CREATE TABLE online_hashtags (
    tag         VARCHAR PRIMARY KEY,
    days        TIMESTAMP[],
    uses        BIGINT[]
);
