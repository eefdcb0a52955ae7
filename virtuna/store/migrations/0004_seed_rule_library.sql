-- The rule library the engine scores drafts against: the original's 25 seed rules, with the
-- evaluation tiers of its later semantic-tier migration (12 regex, 13 semantic). Every rule
-- starts at weight 1.0 and max_score 10; the validate-rules job adjusts weights from outcomes.
-- Every rule has an evaluation prompt, including the regex ones, so a rule can move to the
-- semantic tier by changing its evaluation_tier alone. A store whose library already holds a
-- rule with one of these ids or names keeps its own row.
INSERT OR IGNORE INTO rule_library (
    id, name, description, category, pattern, score_modifier, platform, evaluation_tier,
    evaluation_prompt, weight, max_score, is_active, created_at, updated_at
) VALUES
(
    'question-hook', 'Question Hook',
    'Opens with a question the viewer wants answered.',
    'hook', 'question_hook', 15, NULL, 'regex',
    'Evaluate if the opening line poses a question the target viewer genuinely wants answered and that the rest of the post answers; score 0-10 where 10 means a specific, personally relevant question in the first sentence that compels the viewer to keep watching for the answer.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'curiosity-gap', 'Curiosity Gap',
    'Hints at a secret, reveal or hidden truth that only the rest of the post resolves.',
    'hook', 'curiosity_gap', 12, NULL, 'regex',
    'Evaluate if the opening creates a curiosity gap, hinting at a secret, reveal or surprising truth while withholding the answer until later; score 0-10 where 10 means an irresistible, specific open loop that the post pays off by its end.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'negative-bias-hook', 'Negative Bias Hook',
    'Leads with a mistake, a warning or something to stop doing.',
    'hook', 'negative_bias', 10, NULL, 'regex',
    'Evaluate how strongly the hook uses negativity bias (a mistake to avoid, a warning, something to stop doing) that the viewer fears applies to them; score 0-10 where 10 means a concrete, credible warning the viewer immediately feels they must hear.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'bold-claim-hook', 'Bold Claim Hook',
    'Makes an absolute or contrarian claim (everyone, no one, always, never, guaranteed).',
    'hook', 'bold_claim', 8, NULL, 'regex',
    'Evaluate if the post opens with a bold, absolute or contrarian claim that challenges what the viewer believes and that the post then backs up; score 0-10 where 10 means a striking, credible claim that demands attention and is substantiated.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'story-hook', 'Story Hook',
    'Opens a personal story ("I was", "one day", "last week").',
    'hook', 'story_hook', 10, NULL, 'regex',
    'Evaluate if the post opens with a personal story set-up (a moment, a situation, a person) that makes the viewer want to know what happened; score 0-10 where 10 means a vivid, specific story opening with clear stakes in the first lines.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'loop-structure', 'Loop Structure',
    'The ending leads back into the beginning, inviting rewatches.',
    'retention', 'loop_structure', 12, NULL, 'semantic',
    'Evaluate if the content is built to loop, its ending flowing back into its opening (a sentence completed by the start, a reveal that sends the viewer back) so that it gets rewatched; score 0-10 where 10 means a seamless loop that makes an immediate rewatch natural.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'payoff-delay', 'Payoff Delay',
    'Promises a payoff later in the video ("wait for it", "at the end").',
    'retention', 'payoff_delay', 10, NULL, 'regex',
    'Evaluate if the content promises a payoff that arrives later (a result, reveal or punchline held back) and keeps the viewer watching for it; score 0-10 where 10 means an explicit, worthwhile promise that is delivered at the end.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'pattern-interrupt', 'Pattern Interrupt',
    'Breaks the viewer''s expectation midway ("but wait", "plot twist").',
    'retention', 'pattern_interrupt', 8, NULL, 'regex',
    'Evaluate if the content breaks the viewer''s expectation partway through (a twist, a sudden change of direction, a surprising turn) to renew attention; score 0-10 where 10 means a well-timed, genuine surprise that hooks the viewer again.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'information-density', 'Information Density',
    'Packs a lot of substance into the post (more than 50 words).',
    'retention', 'info_density', 10, NULL, 'regex',
    'Evaluate how much useful information the content delivers for its length, without filler or repetition; score 0-10 where 10 means every line adds something new and the viewer learns a lot in little time.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'emotional-arc', 'Emotional Arc',
    'Moves the viewer through a change of feeling.',
    'retention', 'emotional_arc', 12, NULL, 'semantic',
    'Evaluate if the content takes the viewer through a clear emotional change (tension to relief, frustration to triumph, sadness to hope) rather than one flat tone; score 0-10 where 10 means a strong, coherent arc the viewer feels by the end.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'tiktok-short-duration', 'TikTok Short Duration',
    'Short-form content (a caption under 300 characters stands in for a short video).',
    'platform', 'short_duration', 10, 'tiktok', 'regex',
    'Evaluate if the content fits TikTok''s short form, making its point quickly and without padding; score 0-10 where 10 means tight, short content with nothing left to cut.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'tiktok-trending-sound', 'TikTok Trending Sound',
    'Uses a sound that is currently trending on TikTok.',
    'platform', 'trending_sound', 15, 'tiktok', 'semantic',
    'Evaluate if the content uses, or is built around, a sound currently trending on TikTok and fits it naturally; score 0-10 where 10 means a clearly trending sound used the way its trend expects.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'instagram-carousel-depth', 'Instagram Carousel Depth',
    'Has enough distinct points to fill a carousel viewers swipe to the end.',
    'platform', 'carousel_depth', 8, 'instagram', 'semantic',
    'Evaluate if the content has enough distinct, well-ordered points to make a carousel that viewers swipe through to the last slide; score 0-10 where 10 means several substantial points and a clear reason to reach the final slide.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'youtube-thumbnail-bait', 'YouTube Thumbnail Bait',
    'Has a striking moment or promise that makes a thumbnail people click.',
    'platform', 'thumbnail_bait', 10, 'youtube', 'semantic',
    'Evaluate if the content offers a striking image, moment or promise that would make a thumbnail people click, and honestly delivers on it; score 0-10 where 10 means an obvious, compelling thumbnail moment that the content pays off.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'tiktok-duet-stitch-potential', 'TikTok Duet Stitch Potential',
    'Invites other creators to duet or stitch it (a challenge, a take to react to).',
    'platform', 'duet_stitch', 8, 'tiktok', 'semantic',
    'Evaluate how much the content invites other creators to duet or stitch it (a challenge, a hot take to react to, an open question, a format to copy); score 0-10 where 10 means a clear, low-effort invitation that many creators would take up.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'tiktok-text-overlay', 'TikTok Text Overlay',
    'Carries its hook and key points in on-screen text, for viewers watching without sound.',
    'platform', 'text_overlay', 6, 'tiktok', 'semantic',
    'Evaluate if the content uses, or clearly lends itself to, on-screen text overlays that state the hook and key points for viewers watching without sound; score 0-10 where 10 means short, readable overlays that carry the message on their own.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'instagram-reel-hook-speed', 'Instagram Reel Hook Speed',
    'Reaches its hook within the first seconds of a Reel.',
    'platform', 'reel_hook_speed', 10, 'instagram', 'semantic',
    'Evaluate how quickly the content reaches its hook (the reason to keep watching), without a slow introduction; score 0-10 where 10 means the hook lands within the first one or two seconds.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'trending-audio-usage', 'Trending Audio Usage',
    'Builds on audio that is trending on the platform.',
    'audio', 'trending_audio', 12, NULL, 'semantic',
    'Evaluate if the content uses trending audio (a popular song, sound or voice-over format) in a way that fits its idea rather than as mere background; score 0-10 where 10 means currently trending audio that is central to the content.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'original-audio-quality', 'Original Audio Quality',
    'Original voice-over or sound that is clear and engaging.',
    'audio', 'original_audio', 8, NULL, 'semantic',
    'Evaluate how clear, well-paced and engaging the original audio (voice-over, dialogue, self-made sound) is, and whether others would want to reuse it; score 0-10 where 10 means distinctive, clear original audio that carries the content.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'caption-hook-alignment', 'Caption Hook Alignment',
    'The caption opens with a short, punchy first sentence.',
    'text', 'caption_hook', 10, NULL, 'regex',
    'Evaluate if the caption opens with a short, punchy first sentence that matches and reinforces the video''s hook; score 0-10 where 10 means a first sentence of at most about 80 characters that makes the viewer want the rest.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'call-to-action-clarity', 'Call to Action Clarity',
    'Asks the viewer clearly to follow, comment, share or save.',
    'text', 'cta_clarity', 8, NULL, 'regex',
    'Evaluate if the content gives a clear, specific call to action (follow, comment, share, save) with a reason to act on it; score 0-10 where 10 means one clear, natural ask that fits the content.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'optimal-post-timing', 'Optimal Post Timing',
    'Posted when its audience is active, on a topic that is timely.',
    'timing', 'post_timing', 6, NULL, 'semantic',
    'Evaluate how well the planned post time (when given) and the topic suit the hours its target audience is active and what is timely now (a season, an event, a news moment); score 0-10 where 10 means posted at a peak time for its audience on a topic that matters right now.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'content-pacing', 'Content Pacing',
    'Moves at a pace that holds attention without rushing.',
    'timing', 'content_pacing', 10, NULL, 'semantic',
    'Evaluate how well the content is paced, moving briskly from point to point without dead time or rushed, confusing jumps; score 0-10 where 10 means an even, brisk rhythm that holds attention to the end.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'authenticity-signal', 'Authenticity Signal',
    'Speaks in the first person, from the creator''s own experience.',
    'creator', 'authenticity', 12, NULL, 'regex',
    'Evaluate how authentic the content feels: first-person, drawn from the creator''s own experience, honest and unpolished rather than scripted advertising; score 0-10 where 10 means clearly genuine, personal content the viewer trusts.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
),
(
    'niche-authority', 'Niche Authority',
    'Shows real expertise in the creator''s niche.',
    'creator', 'niche_authority', 10, NULL, 'semantic',
    'Evaluate if the content demonstrates real expertise in its niche (specific knowledge, insider detail, correct terms, credible results) rather than generic advice; score 0-10 where 10 means the viewer would see the creator as an authority worth following.',
    1.0, 10, TRUE, now()::TIMESTAMP, now()::TIMESTAMP
);
