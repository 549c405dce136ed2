"""The Ray Serve deployment (the only package that imports ray): engine replicas with the
Autellix scheduler, the program-table and router actors, and the program-aware ingress."""
