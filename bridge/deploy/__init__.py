"""DAG deployment: an upload staged as it arrives (:mod:`.staging`), checked by Airflow's
own interpreter and serialized through the command path (:mod:`.dags`), installed atomically
with a backup of what it replaces (:mod:`.install`)."""
