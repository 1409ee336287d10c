"""Helpers for the slow-thinking reproduction notebooks: one module per concern."""

import warnings

# Two third-party warnings print a path inside the virtual environment into every executed
# notebook and say nothing a reader can act on: tqdm's notice that ipywidgets is absent
# (progress bars fall back to text) and a transformers deprecation raised inside its Trainer.
warnings.filterwarnings("ignore", message="IProgress not found")
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
