"""The use cases, between HTTP and the command path: a call captured on arrival, prepared,
run as a sequence of events with one result assembly; following a DAG run or a task log;
a call run as a job; the installed Airflow. Nothing here imports aiohttp (tests/test_layout.py).
"""
