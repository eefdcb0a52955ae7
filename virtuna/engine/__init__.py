"""The prediction engine: normalize, rules, sound matching, trends, creator context, LLMs,
the tier-model signal, aggregation and calibration, run as an async pipeline."""
