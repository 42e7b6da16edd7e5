"""Jobs: long work that outlives the connection that started it (detach=true)."""
