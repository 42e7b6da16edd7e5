"""airflow-rest-bridge: the Airflow CLI over HTTP, as a standalone daemon."""

__version__ = "0.1.0"
