"""inferops: provision, load-test, measure and size self-hosted inference fleets."""

__version__ = "0.1.0"
