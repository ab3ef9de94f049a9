"""Explaining predictions with attention: rollout, flow, gradient-weighted relevance, faithfulness."""
