"""Errors that every layer of model/ raises, in a module that imports nothing.

CheckpointError used to live next to the checkpoint files' code, which imports the tokenizers;
the tokenizers raise it too, so it sits here, below both, and no import circle is needed to reach it.
"""


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, malformed or does not match its recorded hash."""
