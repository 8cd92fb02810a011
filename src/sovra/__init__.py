"""sovra: a data-sovereignty gateway.

Each person's data stays under the rules of the country it belongs to, and every
ingest, decision and key release is provable from a public Merkle transparency log.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
