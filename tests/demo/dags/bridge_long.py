"""Demo DAG for airflow-rest-bridge: one task that runs for minutes, printing as it goes.

``ticks`` prints ``tick N`` every second for four minutes: long enough to detach it as a
job, follow it from another page or terminal, and cancel it.
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
    def ticks() -> None:
        for number in range(1, 241):
            print(f"tick {number}", flush=True)
            time.sleep(1)

    ticks()
