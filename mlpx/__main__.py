"""`python -m mlpx` and the `mlpx` console script.

The MLflow helper process starts before anything else is imported, so its ~2 s import of MLflow
overlaps all of the main process's start-up (see ``mlpx.tracking.helper``). SIGINT, SIGTERM and
SIGHUP end the run KILLED, print one line saying what was kept, and exit 128 + the signal's
number (``mlpx.signals``).
"""

import gc
import sys

from mlpx import signals


def main() -> None:
    signals.install()
    try:
        from mlpx.tracking.helper import start_early

        start_early(sys.argv[1:])
        from mlpx.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt as interrupt:
        from mlpx.sweeps.callback import close_interrupted_sweeps

        close_interrupted_sweeps(interrupt)
        sys.exit(signals.report(interrupt))
    # Everything is written and the helper has answered. Interpreter shutdown would otherwise
    # sweep the ~130,000 objects of NumPy, Hydra and matplotlib for cycles: 0.2 s for nothing.
    gc.freeze()


if __name__ == "__main__":
    main()
