"""Training tasks registered in :data:`explore_attention.train.TASKS` (translation, synthetic)."""
