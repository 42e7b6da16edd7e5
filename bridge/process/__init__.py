"""Running Airflow's processes: the one command path (:mod:`.path`) and what it is made of:
a command and its session (:mod:`.command`, :mod:`.sessions`, :mod:`.pipes`,
:mod:`.launching`), the warm helper's daemon side (:mod:`.warm`, :mod:`.warm_process`) and
the ledger of running commands (:mod:`.ledger`)."""
