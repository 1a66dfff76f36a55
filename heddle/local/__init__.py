"""`heddle up`: a whole mesh of local processes from one directory."""
