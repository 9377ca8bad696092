"""The `berdaya` command line: bring the local stack up and down, import the city's list, mint tokens, show status."""
