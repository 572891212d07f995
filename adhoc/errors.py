"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad config, missing or corrupt population, incompatible base model, impossible parameters."""
