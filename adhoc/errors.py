"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad config, missing or corrupt population, incompatible base model, impossible parameters."""


class GameError(UserError, ValueError):
    """Impossible game parameters (reported to the user as one line, exit code 2)."""


class MissingExtra(GameError):
    """A game that needs an optional dependency (an extra such as ``.[openspiel]``) which is not installed."""


class Interrupted(Exception):
    """A run stopped on SIGTERM / SIGINT after writing a checkpoint; the CLI says how to resume it."""

    def __init__(self, out, iteration: int, signum: int) -> None:
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name} at iteration {iteration}; checkpoint saved. "
                         f"Continue with the same command and --resume --out {out}")
        self.exit_code = 128 + signum


def run_script(name: str, main, *args):
    """``main(*args)`` of a reproduce script (scripts/reproduce*.py), which skips what is complete in its output
    folders and resumes an interrupted training from its checkpoint: stopped by SIGTERM / Ctrl-C, it says in one
    line how to continue (run the same command again) and exits 128 + the signal; a UserError is one line, exit 2."""
    import sys

    try:
        return main(*args)
    except Interrupted as exc:
        why = str(exc).split(";")[0]
        print(f"{name}: {why}; run the same command again to continue (what is complete is reused, the "
              f"interrupted training resumes from its checkpoint)", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print(f"{name}: interrupted; run the same command again to continue (what is complete is reused; a "
              f"training stopped this way resumes from its last checkpoint)", file=sys.stderr)
        raise SystemExit(130) from None
    except UserError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
