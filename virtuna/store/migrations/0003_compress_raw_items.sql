-- Store the raw source items zstd-compressed: DuckDB's default compression of long JSON text
-- made the raw column most of an ingest's write time (bench/ingest.py). DuckDB cannot change a
-- column's compression in place, so the table is rebuilt with the same columns.
CREATE TABLE scraped_videos_zstd (
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
    raw                 JSON USING COMPRESSION zstd,  -- the source item as read
    PRIMARY KEY (platform, platform_video_id)
);

INSERT INTO scraped_videos_zstd SELECT * FROM scraped_videos;
DROP TABLE scraped_videos;
ALTER TABLE scraped_videos_zstd RENAME TO scraped_videos;
