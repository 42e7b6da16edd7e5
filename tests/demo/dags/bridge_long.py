"""Demo DAG for airflow-rest-bridge: one task that runs for minutes, printing as it goes.

``ticks`` prints ``tick N`` every second for four minutes: long enough to detach it as a
job, follow it from another page or terminal, and cancel it. A run's conf
``{"ticks": N}`` makes it N seconds instead (a task log followed to its end).
"""

import datetime
import time

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="bridge_long",
    start_date=datetime.datetime(2020, 1, 1),
    schedule=None,
    catchup=False,
    tags=["airflow-rest-bridge"],
) as dag:

    @task
    def ticks(**context: object) -> None:
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        for number in range(1, int(conf.get("ticks", 240)) + 1):
            print(f"tick {number}", flush=True)
            time.sleep(1)

    ticks()
