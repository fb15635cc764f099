"""The command line: parses arguments and renders results; the work is done in consulha.agent."""
