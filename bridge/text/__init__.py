"""Text that passes through the bridge: Airflow's start-up noise filtered out of command
output (:mod:`.noise`), secrets masked before anything is shown or logged (:mod:`.redact`)."""
