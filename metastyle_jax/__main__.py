"""`python -m metastyle_jax COMMAND [FLAGS]`, the same as the installed `metastyle COMMAND [FLAGS]`."""

from metastyle_jax.commands import main

if __name__ == "__main__":
    main()
