"""The course layer: experiments and helpers that serve the notebooks."""
