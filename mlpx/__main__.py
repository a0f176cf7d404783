"""`python -m mlpx`: the same entry point as the `mlpx` console script."""

from mlpx.cli import main

if __name__ == "__main__":
    main()
