"""Task logs: a task try's log file in the installation's local logs folder, found and read."""
