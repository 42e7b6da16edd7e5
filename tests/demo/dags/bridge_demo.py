"""Demo DAG for airflow-rest-bridge: works on Airflow 2.x and 3.x.

``slow_lines`` prints a line, sleeps, then prints another: it shows output streaming live.
``hello`` fails when the run's conf says ``{"fail": true}``: a run that ends failed.
"""

import datetime
import time

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.operators.bash import BashOperator

with DAG(
    dag_id="bridge_demo",
    start_date=datetime.datetime(2020, 1, 1),
    schedule="@daily",
    catchup=False,
    tags=["airflow-rest-bridge"],
) as dag:

    @task
    def hello(**context: object) -> None:
        print("hello from bridge_demo", flush=True)
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        if conf.get("fail"):  # trigger_dag&conf={"fail": true}: a run that fails, on purpose
            raise RuntimeError('asked to fail by the run\'s conf {"fail": true}')

    @task
    def slow_lines() -> None:
        print("first line", flush=True)
        time.sleep(2)
        print("second line", flush=True)

    templated = BashOperator(task_id="templated", bash_command="echo run date {{ ds }}")

    hello() >> slow_lines() >> templated
