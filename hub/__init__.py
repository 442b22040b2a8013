"""The `hub` command line: runs the processes, provisions local servers, and operator tools."""
