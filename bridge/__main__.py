"""``python -m bridge``: the same as the ``airflow-rest-bridge`` console script."""

from bridge.launch import main

raise SystemExit(main())
