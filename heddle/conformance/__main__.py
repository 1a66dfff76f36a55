"""`python -m heddle.conformance`: the conformance run, as `heddle conformance`."""

from heddle.conformance.cli import main

if __name__ == "__main__":
    main()
