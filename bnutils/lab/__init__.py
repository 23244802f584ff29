"""The course layer: experiments, diagnostics and the concept inventory the notebooks use."""
