"""The course's maintainer tools, one module a command (``python tools/<name>.py`` from the
repository root, or ``python -m tools.<name>``); tests and benchmarks import them as
``tools.<name>``. Not part of the course package a learner installs."""
