"""Speech: espeak-ng clips, log-mel features, Whisper's cross-attention alignment and word timing.

Import submodules directly (``from explore_attention.audio import alignment``); they pull in
``transformers`` only when a function needs it.
"""
