"""`python -m mlpx` and the `mlpx` console script.

The MLflow helper process starts before anything else is imported, so its ~2 s import of MLflow
overlaps all of the main process's start-up (see ``mlpx.helper_process``).
"""

import gc
import sys

from mlpx.helper_process import start_early


def main() -> None:
    start_early(sys.argv[1:])
    from mlpx.cli import main as cli_main

    cli_main()
    # Everything is written and the helper has answered. Interpreter shutdown would otherwise
    # sweep the ~130,000 objects of NumPy, Hydra and matplotlib for cycles: 0.2 s for nothing.
    gc.freeze()


if __name__ == "__main__":
    main()
