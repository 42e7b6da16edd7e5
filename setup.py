"""airflow-rest-bridge: the Airflow CLI over HTTP, as a standalone daemon."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "bridge" / "__init__.py").read_text())[1]

setup(
    name="airflow-rest-bridge",
    version=VERSION,
    description="Drive the Apache Airflow CLI over HTTP: a standalone aiohttp daemon",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",  # datetime.UTC
    # templates/ and static/ sit at the top of the repository; bridge/templates and
    # bridge/static link to them, so that they are the package's data in a checkout and in
    # an install alike (bridge.http.app finds them with importlib.resources).
    packages=find_packages(include=["bridge", "bridge.*"]),
    package_data={"bridge": ["templates/*.html", "static/*.css", "static/*.js", "static/*.svg"]},
    # Ranges, so that an install into Airflow's own environment keeps Airflow's versions
    # where they fit: the lower bounds are what the unit suite passed with (aiohttp 3.14.5
    # brings web.RequestKey and the request parser's fixes; Airflow 2.11.2 pins it too). The
    # exact set `make test` proves is constraints.txt.
    install_requires=[
        "aiohttp>=3.14.5,<4",
        "aiohttp-jinja2>=1.6,<2",
        "asyncpg>=0.30,<1",  # jobs_database: jobs shared by several bridges on PostgreSQL
        "jinja2>=3.1.5,<4",
        "multidict>=6.1,<8",
        "prometheus-client>=0.21,<1",  # GET /metrics
    ],
    entry_points={"console_scripts": ["airflow-rest-bridge = bridge.launch:main"]},
    classifiers=[
        "Framework :: AsyncIO",
        "Framework :: aiohttp",
        "Framework :: Apache Airflow",
        "Programming Language :: Python :: 3",
    ],
)
