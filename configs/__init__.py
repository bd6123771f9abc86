"""The configs of metastyle-jax, one `get_config()` per file; installed with the package as
`metastyle_jax.configs`, so `--config metastyle` works from a wheel as from this checkout."""
