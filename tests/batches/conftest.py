"""The batches' tests run on both credit stores (fixtures of tests/credits)."""

from tests.credits.conftest import new_store_url, pg_database, store_kind, store_url

__all__ = ["new_store_url", "pg_database", "store_kind", "store_url"]
