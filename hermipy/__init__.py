"""hermipy: run unmodified Linux x86-64 binaries as unikernels."""
__version__ = "0.1.0"
