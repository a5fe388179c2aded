"""Drawing maps: palettes, decorations, palette-mode PNG composition and animation."""
