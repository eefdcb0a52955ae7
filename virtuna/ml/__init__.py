"""The tier model: point-in-time features, tier definitions, training, evaluation, registry."""
