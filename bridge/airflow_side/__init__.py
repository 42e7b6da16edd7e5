"""Scripts run by the Airflow installation's own interpreter, by path: standard library and
Airflow only, never imported by the daemon (which has no Airflow)."""
