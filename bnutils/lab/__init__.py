"""The course layer: experiments, recorders and plotting helpers that serve the notebooks."""
