"""Running as a service: serving until a signal, reloading on SIGHUP (:mod:`.serve`), and
systemd's notify protocol (:mod:`.notify`)."""
