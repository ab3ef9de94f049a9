"""Small models trained on a laptop CPU, in every modality. Import submodules directly."""
