"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad config, missing or corrupt population, incompatible base model, impossible parameters."""


class GameError(UserError, ValueError):
    """Impossible game parameters (reported to the user as one line, exit code 2)."""


class Interrupted(Exception):
    """A run stopped on SIGTERM / SIGINT after writing a checkpoint; the CLI says how to resume it."""

    def __init__(self, out, iteration: int, signum: int) -> None:
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name} at iteration {iteration}; checkpoint saved. "
                         f"Continue with the same command and --resume --out {out}")
        self.exit_code = 128 + signum
