"""stagectl: the command-line toolbox of a systematic crypto trading desk."""

__version__ = "0.1.0"
