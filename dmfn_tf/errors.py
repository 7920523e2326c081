"""Errors caused by user input. The CLI prints these as one line naming the file and the problem."""


class UserError(Exception):
    """Base class of every error whose message is meant for the user (bad file, bad value)."""


class ConfigError(UserError, ValueError):
    """A configuration value or key is invalid; the message names the key and the file."""
