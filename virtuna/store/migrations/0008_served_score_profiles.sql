-- The served score names what it predicts: the signal profile it was computed from (which
-- calibration map applies), the outcome it is a probability of, and the view count at which
-- that outcome happens ("resonates at N views").
ALTER TABLE analysis_results ADD COLUMN signal_profile VARCHAR;
ALTER TABLE analysis_results ADD COLUMN score_target VARCHAR;
ALTER TABLE analysis_results ADD COLUMN resonates_at_views DOUBLE;
-- Whether the post reached its analysis's target, decided when the outcome is recorded.
ALTER TABLE outcomes ADD COLUMN resonated BOOLEAN;
-- One calibration map per signal profile, with its held-out ECE interval.
ALTER TABLE calibration_params ADD COLUMN profile VARCHAR;
ALTER TABLE calibration_params ADD COLUMN held_out_count INTEGER;
ALTER TABLE calibration_params ADD COLUMN ece_after_low DOUBLE;
ALTER TABLE calibration_params ADD COLUMN ece_after_high DOUBLE;
-- A map fitted before profiles existed was fitted on a mix of profiles: it is not served.
UPDATE calibration_params SET is_active = FALSE WHERE profile IS NULL;
