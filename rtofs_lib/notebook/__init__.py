"""Notebooks: the shared kernel's start-up and ``spark``, and the ipywidgets viewers."""
